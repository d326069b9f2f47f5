package status

import (
	"context"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Source is what the status page shows: the running gate.
type Source interface {
	// Status describes the gate now, reading memory only except for the
	// queue's counts, which ctx bounds.
	Status(ctx context.Context) Snapshot
}

// Issuer kinds.
const (
	KindJWT           = "jwt"
	KindIntrospection = "introspection"
	KindEmbedded      = "embedded"
)

// Snapshot is everything the status page shows. Nothing in it is a
// token, a secret, a refresh token, a signature or key material.
type Snapshot struct {
	Version string    `json:"version"`
	Now     time.Time `json:"now"`
	// Started is when the gate started; UptimeSeconds is Now - Started.
	Started       time.Time `json:"started"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	// WindowMinutes is how many minutes the routes' counts cover.
	WindowMinutes int         `json:"window_minutes"`
	Issuers       []Issuer    `json:"issuers"`
	Routes        []Route     `json:"routes"`
	Egress        []Egress    `json:"egress"`
	Replay        Replay      `json:"replay"`
	Queue         *Queue      `json:"queue,omitempty"`
	SharedRedis   SharedRedis `json:"shared_redis"`
	Reload        Reload      `json:"reload"`
}

// Issuer is one issuer of the receiving side.
type Issuer struct {
	Name string `json:"name"`
	// Kind is KindJWT, KindIntrospection or KindEmbedded.
	Kind string `json:"kind"`
	// KeyIDs are the kids of the keys held (JWT and embedded issuers).
	KeyIDs []string `json:"key_ids,omitempty"`
	// KeysFetched is the last successful JWKS fetch and KeysAgeSeconds
	// its age; zero for keys held in memory or never fetched.
	KeysFetched    time.Time `json:"keys_fetched,omitzero"`
	KeysAgeSeconds float64   `json:"keys_age_seconds,omitempty"`
	// Ready: the issuer can verify tokens now (keys held).
	Ready bool `json:"ready"`
	// Discovery is the OIDC discovery state of a JWT issuer without a
	// jwks_url (verifier.Discovery…).
	Discovery string `json:"discovery,omitempty"`
	// LastAnswer is an introspection endpoint's last usable answer.
	LastAnswer time.Time `json:"last_answer,omitzero"`
	// LastError is the last fetch, discovery or introspection failure;
	// "" when the last attempt succeeded.
	LastError string `json:"last_error,omitempty"`
}

// Route is one configured route (or "(none)": requests no route took).
type Route struct {
	Name string `json:"name"`
	// Auth is how the route authenticates: bearer, signature, any, all,
	// public; "" for "(none)".
	Auth string `json:"auth"`
	// Queued: the route stores requests and delivers them later.
	Queued bool `json:"queued,omitempty"`
	// Counts are the requests over the last WindowMinutes minutes;
	// Reasons the refused ones by reason, most frequent first.
	Counts  Counts   `json:"counts"`
	Reasons []Reason `json:"refused_by_reason"`
}

// Egress is one egress entry's token.
type Egress struct {
	Name string `json:"name"`
	// Grant is client_credentials or authorization_code.
	Grant string `json:"grant"`
	// TokenHeld: a token valid for a request leaving now.
	TokenHeld bool `json:"token_held"`
	// Expires is when the token expires, ExpiresInSeconds how long from
	// Now; RefreshAt when it is renewed.
	Expires          time.Time `json:"expires,omitzero"`
	ExpiresInSeconds float64   `json:"expires_in_seconds"`
	RefreshAt        time.Time `json:"refresh_at,omitzero"`
	// LastAttempt is when the last token request ended and LastResult
	// its result (success, invalid_client, timeout, …).
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastResult  string    `json:"last_result,omitempty"`
	// LastError is the last failure's redacted text; "" after a success.
	LastError string `json:"last_error,omitempty"`
	// Failures counts failures in a row; RetryAt when the next request
	// may be made.
	Failures int       `json:"failures"`
	RetryAt  time.Time `json:"retry_at,omitzero"`
	// Waits counts app requests that had to wait for a token.
	Waits uint64 `json:"waits"`
	// ReadyRequiresToken: /readyz fails while this entry holds no token.
	ReadyRequiresToken bool `json:"ready_requires_token"`
}

// ReplayNone is Replay.Kind when no route keeps replay ids.
const ReplayNone = "none"

// Replay is the signed-webhook replay store.
type Replay struct {
	// Kind is memory, redis, or ReplayNone when no route keeps replay ids
	// (then Reachable is false and means nothing).
	Kind string `json:"kind"`
	// Reachable: the store answers (always true for memory).
	Reachable bool `json:"reachable"`
	// FailOpen: signed routes serve, unchecked, while Redis is down.
	FailOpen bool `json:"fail_open,omitempty"`
	// Error is why Redis does not answer.
	Error string `json:"error,omitempty"`
}

// SharedRedis is the server of the top-level redis: block (route rate
// limits, the Token URL's buckets, shared egress tokens). What uses it
// falls back when it does not answer — rate limits count in each
// replica's memory, shared egress entries request their own tokens — so
// readiness does not depend on it; this is where a broken one shows.
type SharedRedis struct {
	// Configured: the configuration has a redis: block.
	Configured bool `json:"configured"`
	// Reachable: the last background PING (AUTH included) answered.
	Reachable bool `json:"reachable"`
	// Error is why it does not answer (redacted).
	Error string `json:"error,omitempty"`
}

// Queue is the delivery queue of queued routes.
type Queue struct {
	// Store is file or redis.
	Store string `json:"store"`
	// Writable: the store takes writes; Error says why not.
	Writable bool   `json:"writable"`
	Error    string `json:"error,omitempty"`
	// Routes are the queued routes' stored messages; StatsError is why
	// they could not be counted now.
	Routes     []QueueRoute `json:"routes"`
	StatsError string       `json:"stats_error,omitempty"`
}

// QueueRoute is one queued route's stored messages.
type QueueRoute struct {
	Route string `json:"route"`
	// Pending messages wait for delivery, the oldest for
	// OldestAgeSeconds; Dead ones were given up (dead letters).
	Pending          int64   `json:"pending"`
	OldestAgeSeconds float64 `json:"oldest_age_seconds"`
	Dead             int64   `json:"dead"`
	Bytes            int64   `json:"bytes"`
}

// Reload results.
const (
	ReloadStart   = "start"   // no reload yet: the configuration loaded at start
	ReloadSuccess = "success" // the last reload serves
	ReloadFailure = "failure" // the last reload was refused; the previous configuration serves
)

// Reload is the last configuration load.
type Reload struct {
	At time.Time `json:"at"`
	// Result is ReloadStart, ReloadSuccess or ReloadFailure.
	Result string `json:"result"`
	// Trigger names what asked for it (file change, SIGHUP).
	Trigger string `json:"trigger,omitempty"`
	// Error is why it was refused.
	Error string `json:"error,omitempty"`
}

// maxText bounds every error text shown.
const maxText = 1024

// redacted replaces a secret found in a text.
const redacted = "[redacted]"

// Redact makes every free text of s (the error texts) safe to show: each
// secret, in the forms a URL or a form would carry it, is replaced, then
// control characters become spaces and the text is cut at maxText bytes.
// The texts' owners redact them already; this is the second line.
func (s *Snapshot) Redact(secrets []string) {
	var forms []string
	for _, sec := range secrets {
		if sec == "" {
			continue
		}
		forms = append(forms, sec, url.QueryEscape(sec), url.PathEscape(sec))
	}
	for _, p := range s.texts() {
		*p = clip(scrub(*p, forms), maxText)
	}
}

// texts points at every free text of s.
func (s *Snapshot) texts() []*string {
	var out []*string
	for i := range s.Issuers {
		out = append(out, &s.Issuers[i].LastError)
	}
	for i := range s.Egress {
		out = append(out, &s.Egress[i].LastError)
	}
	out = append(out, &s.Replay.Error, &s.SharedRedis.Error, &s.Reload.Error, &s.Reload.Trigger)
	if q := s.Queue; q != nil {
		out = append(out, &q.Error, &q.StatsError)
	}
	return out
}

// scrub replaces every occurrence of every form in text, ignoring ASCII
// case; occurrences that overlap or touch become one [redacted].
func scrub(text string, forms []string) string {
	lower := asciiLower(text)
	hide := make([]bool, len(text))
	found := false
	for _, f := range forms {
		lf := asciiLower(f)
		for from := 0; from < len(lower); {
			i := strings.Index(lower[from:], lf)
			if i < 0 {
				break
			}
			for j := from + i; j < from+i+len(lf); j++ {
				hide[j] = true
			}
			found = true
			from += i + 1
		}
	}
	if !found {
		return text
	}
	var b strings.Builder
	for i := 0; i < len(text); i++ {
		switch {
		case !hide[i]:
			b.WriteByte(text[i])
		case i == 0 || !hide[i-1]:
			b.WriteString(redacted)
		}
	}
	return b.String()
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// clip turns control characters into spaces, makes s valid UTF-8 and cuts
// it at n bytes on a rune boundary.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	for _, r := range s {
		if r < 0x20 && r != '\n' || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			r = ' '
		}
		if b.Len()+utf8.RuneLen(r) > n {
			b.WriteString("…")
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}
