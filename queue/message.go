package queue

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Message is one verified request, stored until the receiver takes it.
// Its payload (every field but Progress) never changes once stored; its
// Progress does, with every attempt.
type Message struct {
	// ID is the store's unique id (time-ordered hex), set by Enqueue.
	ID string `json:"id"`
	// DeliveryID is sent as X-Tokengate-Delivery-Id with every attempt:
	// the sender's own message id when its scheme has one, else ID.
	DeliveryID string `json:"delivery_id"`
	// Route is the configured route's name.
	Route string `json:"route"`
	// Method, Path (cleaned) and Query (raw) of the request.
	Method string `json:"method"`
	Path   string `json:"path"`
	Query  string `json:"query,omitempty"`
	// Header holds the headers exactly as the forwarding policy made them.
	Header http.Header `json:"header"`
	// Body is the whole request body.
	Body []byte `json:"body"`
	// Received is when the gate got the request.
	Received time.Time `json:"received"`
	// Identity is what the gate verified about the sender.
	Identity Identity `json:"identity"`
	// Trace is the W3C traceparent of the request that stored the
	// message, when tracing was on: each delivery attempt's span links to
	// it. Messages stored without it (by an older version, or with
	// tracing off) have none; their attempts start unlinked traces.
	Trace string `json:"trace,omitempty"`

	Progress `json:"-"`

	// lease names the store's claim while an attempt runs (a Redis
	// stream entry id; unused by the file store).
	lease string
	// leasedAt is when the worker leased it (to ask, before an attempt
	// that waited, whether an operator dropped it meanwhile).
	leasedAt time.Time
}

// Identity is the verified identity of a message's sender.
type Identity struct {
	Subject   string `json:"subject,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Issuer    string `json:"issuer,omitempty"`
	Signature string `json:"signature,omitempty"` // the signature scheme that verified it
}

// State is where a message is in its life.
type State string

// A stored message is pending (waiting for, or in, an attempt) or dead
// (a dead letter: it will not be tried again unless an operator says so).
// A delivered message is removed.
const (
	Pending State = "pending"
	Dead    State = "dead"
)

// Progress is a message's delivery state.
type Progress struct {
	State State `json:"state"`
	// Attempts made so far.
	Attempts int `json:"attempts"`
	// Next is when the message is due for its next attempt.
	Next time.Time `json:"next"`
	// Expires is when a pending message becomes a dead letter (max_age
	// after it arrived, or after an operator retried it).
	Expires time.Time `json:"expires"`
	// Last is the last attempt's outcome, nil before the first.
	Last *Answer `json:"last,omitempty"`
	// Reason says why a dead letter died: "max_attempts", "max_age" or
	// "refused" (a 4xx that is not retried).
	Reason string `json:"reason,omitempty"`
}

// Answer is one attempt's outcome.
type Answer struct {
	// Status is the receiver's status code, 0 when none came.
	Status int `json:"status,omitempty"`
	// Body is a short excerpt of the receiver's answer.
	Body string `json:"body,omitempty"`
	// Error says why no status came (connection refused, timeout), or why
	// the message became a dead letter.
	Error string    `json:"error,omitempty"`
	At    time.Time `json:"at"`
}

// MaxExcerpt bounds Answer.Body, in bytes.
const MaxExcerpt = 256

// newID is a unique, time-ordered id: 12 hex digits of Unix milliseconds
// and 16 random ones.
func newID(now time.Time) string {
	var raw [14]byte // the low 6 bytes of the milliseconds, big-endian, then 8 random
	binary.BigEndian.PutUint64(raw[:8], uint64(now.UnixMilli())<<16)
	_, _ = rand.Read(raw[6:]) // never fails (crypto/rand panics instead)
	var id [28]byte
	hex.Encode(id[:], raw[:])
	return string(id[:])
}

// validID reports whether id has newID's form: store keys are only ever
// built from such ids.
func validID(id string) bool {
	if len(id) != 28 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// payload is the immutable part as stored.
func encodeProgress(p Progress) ([]byte, error) { return json.Marshal(p) }

// decode rebuilds a message from its two stored parts.
func decode(payload, progress []byte) (*Message, error) {
	m := &Message{}
	if err := decodePayload(payload, m); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(progress, &m.Progress); err != nil {
		return nil, fmt.Errorf("queue: stored progress of %s: %w", m.ID, err)
	}
	return m, nil
}

// excerpt keeps the first MaxExcerpt bytes of b as printable text.
func excerpt(b []byte) string {
	if len(b) > MaxExcerpt {
		b = b[:MaxExcerpt]
	}
	return strings.Map(func(r rune) rune {
		if r == '\uFFFD' || r < 0x20 && r != '\n' && r != '\t' || r == 0x7f {
			return '.'
		}
		return r
	}, strings.ToValidUTF8(string(b), "."))
}

// Codes is a set of status codes, each written "200" or "2xx".
type Codes []string

// ParseCodes checks each entry's form.
func ParseCodes(s []string) (Codes, error) {
	for _, c := range s {
		if !validCode(c) {
			return nil, fmt.Errorf("queue: status %q: write a code (204) or a class (2xx)", c)
		}
	}
	return Codes(s), nil
}

func validCode(c string) bool {
	if len(c) != 3 || c[0] < '1' || c[0] > '5' {
		return false
	}
	if c[1:] == "xx" {
		return true
	}
	n, err := strconv.Atoi(c)
	return err == nil && n >= 100 && n <= 599
}

// Has reports whether status is in the set.
func (cs Codes) Has(status int) bool {
	s := strconv.Itoa(status)
	for _, c := range cs {
		if c == s || len(s) == 3 && c[1:] == "xx" && c[0] == s[0] {
			return true
		}
	}
	return false
}
