package queue

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// payloadV1 opens a payload in the binary form; a payload that opens
// with '{' is the JSON form earlier versions stored, still read.
const payloadV1 = 0x01

// errCorrupt says a stored payload cannot be read back.
var errCorrupt = errors.New("queue: stored message is corrupt")

// encodePayload writes m's immutable part: a version byte, then every
// field length-prefixed (uvarint), the body last but one. Decoding it
// costs a few allocations, not a JSON parse with base64.
func encodePayload(m *Message) ([]byte, error) {
	rt, err := m.Received.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("queue: arrival time: %w", err)
	}
	n := 1 + len(m.Body) + len(rt) + 16*binary.MaxVarintLen64
	for _, s := range []string{m.ID, m.DeliveryID, m.Route, m.Method, m.Path, m.Query, m.Identity.Subject, m.Identity.ClientID, m.Identity.Issuer, m.Identity.Signature, m.Trace} {
		n += len(s)
	}
	for k, vs := range m.Header {
		n += len(k) + 2*binary.MaxVarintLen64
		for _, v := range vs {
			n += len(v) + binary.MaxVarintLen64
		}
	}
	b := make([]byte, 0, n)
	b = append(b, payloadV1)
	for _, s := range []string{m.ID, m.DeliveryID, m.Route, m.Method, m.Path, m.Query} {
		b = appendString(b, s)
	}
	b = binary.AppendUvarint(b, uint64(len(m.Header)))
	for k, vs := range m.Header {
		b = appendString(b, k)
		b = binary.AppendUvarint(b, uint64(len(vs)))
		for _, v := range vs {
			b = appendString(b, v)
		}
	}
	b = appendBytes(b, rt)
	for _, s := range []string{m.Identity.Subject, m.Identity.ClientID, m.Identity.Issuer, m.Identity.Signature, m.Trace} {
		b = appendString(b, s)
	}
	return appendBytes(b, m.Body), nil
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendBytes(b, p []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(p))), p...)
}

// decodePayload reads a payload in either form into m.
func decodePayload(p []byte, m *Message) error { return decodePayloadInto(p, m, true) }

// decodePayloadInto reads a payload into m, its head and body only if
// whole (a listing's summary: they are checked, not copied; a sender sets
// both, up to the head limit and max_body_size each).
func decodePayloadInto(p []byte, m *Message, whole bool) error {
	if len(p) > 0 && p[0] == '{' {
		if err := json.Unmarshal(p, m); err != nil {
			return fmt.Errorf("queue: stored message: %w", err)
		}
		return nil
	}
	if len(p) == 0 || p[0] != payloadV1 {
		return errCorrupt
	}
	r := reader{b: p[1:]}
	for _, s := range []*string{&m.ID, &m.DeliveryID, &m.Route, &m.Method, &m.Path, &m.Query} {
		*s = r.string()
	}
	nh := r.count()
	if nh > 0 && whole {
		m.Header = make(http.Header, nh)
	}
	for range nh {
		if !whole {
			r.bytes() // the name
			for range r.count() {
				r.bytes()
			}
			continue
		}
		k := r.string()
		nv := r.count()
		vs := make([]string, 0, nv)
		for range nv {
			vs = append(vs, r.string())
		}
		if r.err == nil {
			m.Header[k] = vs
		}
	}
	if rt := r.bytes(); r.err == nil {
		if err := m.Received.UnmarshalBinary(rt); err != nil {
			return fmt.Errorf("%w: arrival time: %w", errCorrupt, err)
		}
	}
	for _, s := range []*string{&m.Identity.Subject, &m.Identity.ClientID, &m.Identity.Issuer, &m.Identity.Signature, &m.Trace} {
		*s = r.string()
	}
	if body := r.bytes(); whole {
		m.Body = append([]byte(nil), body...) // the caller's buffer may be the database's memory
	}
	if r.err != nil || len(r.b) != 0 {
		return errCorrupt
	}
	return nil
}

// reader takes length-prefixed fields off b; the first short read sets
// err and every later read returns zero values.
type reader struct {
	b   []byte
	err error
}

func (r *reader) count() int {
	n, k := binary.Uvarint(r.b)
	if r.err != nil || k <= 0 || n > uint64(len(r.b)) { // each counted item takes at least a byte
		r.err = errCorrupt
		return 0
	}
	r.b = r.b[k:]
	return int(n)
}

func (r *reader) bytes() []byte {
	n := r.count()
	if r.err != nil || n > len(r.b) {
		r.err = errCorrupt
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) string() string { return string(r.bytes()) }
