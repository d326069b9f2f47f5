package queue

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"
)

// recordV1 opens a record in the binary form; a record that opens with
// '{' is the JSON form earlier versions stored, still read.
const recordV1 = 0x01

// encodeRecord writes r: a version byte, then the fields in order,
// numbers as varints and times as Unix nanoseconds (0: zero time), so
// that writing the index costs no JSON encoding per message.
func encodeRecord(r record) []byte {
	p := r.Progress
	n := 1 + len(r.Route) + len(p.State) + len(p.Reason) + 12*binary.MaxVarintLen64
	if p.Last != nil {
		n += len(p.Last.Body) + len(p.Last.Error)
	}
	b := make([]byte, 0, n)
	b = append(b, recordV1)
	b = appendString(b, r.Route)
	b = binary.AppendVarint(b, unixNano(r.Received))
	b = binary.AppendVarint(b, r.Size)
	b = appendString(b, string(p.State))
	b = binary.AppendVarint(b, int64(p.Attempts))
	b = binary.AppendVarint(b, unixNano(p.Next))
	b = binary.AppendVarint(b, unixNano(p.Expires))
	b = appendString(b, p.Reason)
	if p.Last == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.AppendVarint(b, int64(p.Last.Status))
	b = appendString(b, p.Last.Body)
	b = appendString(b, p.Last.Error)
	return binary.AppendVarint(b, unixNano(p.Last.At))
}

// decodeRecord reads a record in either form; every truncation, and
// bytes left over, is an error.
func decodeRecord(v []byte) (record, error) {
	var r record
	if len(v) > 0 && v[0] == '{' {
		if err := json.Unmarshal(v, &r); err != nil {
			return r, fmt.Errorf("%w: %w", errCorrupt, err)
		}
		return r, nil
	}
	if len(v) == 0 || v[0] != recordV1 {
		return r, errCorrupt
	}
	d := reader{b: v[1:]}
	r.Route = d.string()
	r.Received = fromUnixNano(d.varint())
	r.Size = d.varint()
	p := &r.Progress
	p.State = State(d.string())
	p.Attempts = int(d.varint())
	p.Next = fromUnixNano(d.varint())
	p.Expires = fromUnixNano(d.varint())
	p.Reason = d.string()
	switch d.byte() {
	case 0:
	case 1:
		a := &Answer{}
		a.Status = int(d.varint())
		a.Body = d.string()
		a.Error = d.string()
		a.At = fromUnixNano(d.varint())
		p.Last = a
	default:
		d.err = errCorrupt
	}
	if d.err != nil || len(d.b) != 0 {
		return record{}, errCorrupt
	}
	return r, nil
}

// unixNano is t in Unix nanoseconds, 0 for the zero time (times here are
// arrivals, deadlines and answers: all well within int64 nanoseconds).
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func (r *reader) varint() int64 {
	n, k := binary.Varint(r.b)
	if r.err != nil || k <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.b = r.b[k:]
	return n
}

func (r *reader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.err = errCorrupt
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}
