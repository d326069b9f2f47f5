package queue

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"testing"
	"time"
)

func TestPayloadRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 7, 2, 30, 0, 123456789, time.FixedZone("x", 3600))
	cases := []struct {
		name string
		m    Message
	}{
		{"empty", Message{ID: "a", Received: at}},
		{"full", Message{ID: "0193a1b2c3d4e5f6a7b8c9d0e1f2", DeliveryID: "msg_1", Route: "github", Method: "POST", Path: "/hooks/gh", Query: "a=1&b=%20",
			Header:   http.Header{"Content-Type": {"application/json"}, "X-Multi": {"1", "", "3"}, "X-Ünicode": {"ü\x00"}},
			Body:     []byte("{\"a\": 1}\r\n\x00\xff"),
			Received: at, Identity: Identity{Subject: "s", ClientID: "c", Issuer: "https://i", Signature: "github"},
			Trace: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := encodePayload(&tc.m)
			must(t, err)
			var got Message
			must(t, decodePayload(p, &got))
			if !got.Received.Equal(tc.m.Received) {
				t.Fatalf("received %v, want %v", got.Received, tc.m.Received)
			}
			got.Received, tc.m.Received = time.Time{}, time.Time{}
			if len(got.Body) == 0 && len(tc.m.Body) == 0 {
				got.Body, tc.m.Body = nil, nil
			}
			if !reflect.DeepEqual(got, tc.m) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, tc.m)
			}
			for i := range len(p) { // every truncation is an error, never a panic or a short message
				var m Message
				if err := decodePayload(p[:i], &m); !errors.Is(err, errCorrupt) && err == nil {
					t.Fatalf("payload cut at %d of %d decoded without error", i, len(p))
				}
			}
			var m Message
			if err := decodePayload(append(p, 0), &m); err == nil {
				t.Fatal("a payload with a trailing byte decoded")
			}
		})
	}
}

// TestPayloadReadsTheJSONFormEarlierVersionsStored: messages stored
// before the binary form are still delivered.
func TestPayloadReadsTheJSONFormEarlierVersionsStored(t *testing.T) {
	old := Message{ID: "0193a1b2c3d4e5f6a7b8c9d0e1f2", Route: "r", Method: "POST", Path: "/p", Header: http.Header{"A": {"b"}}, Body: []byte("body"), Received: time.Unix(1, 0).UTC()}
	p, err := json.Marshal(&old)
	must(t, err)
	var got Message
	must(t, decodePayload(p, &got))
	if got.ID != old.ID || string(got.Body) != "body" || got.Header.Get("A") != "b" {
		t.Fatalf("old JSON payload read as %+v", got)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 7, 2, 30, 0, 123456789, time.UTC)
	cases := []struct {
		name string
		r    record
	}{
		{"new", record{Route: "github", Received: at, Size: 512, Progress: Progress{State: Pending, Next: at, Expires: at.Add(72 * time.Hour)}}},
		{"zero times", record{Route: "r", Progress: Progress{State: Pending}}},
		{"dead with an answer", record{Route: "r", Received: at, Size: 1 << 20, Progress: Progress{State: Dead, Attempts: 25, Next: at, Expires: at,
			Reason: "max_attempts", Last: &Answer{Status: 503, Body: "busy\x00ü", Error: "", At: at.Add(time.Second)}}}},
		{"no status", record{Route: "r", Received: at, Progress: Progress{State: Pending, Attempts: 1, Last: &Answer{Error: "connection refused", At: at}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := encodeRecord(tc.r)
			got, err := decodeRecord(b)
			must(t, err)
			if !reflect.DeepEqual(got, tc.r) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, tc.r)
			}
			for i := range len(b) { // every truncation is an error
				if _, err := decodeRecord(b[:i]); err == nil {
					t.Fatalf("record cut at %d of %d decoded without error", i, len(b))
				}
			}
			if _, err := decodeRecord(append(b, 0)); err == nil {
				t.Fatal("a record with a trailing byte decoded")
			}
		})
	}
}

// TestRecordReadsTheJSONFormEarlierVersionsStored: a store written by an
// earlier version opens and its messages keep their progress.
func TestRecordReadsTheJSONFormEarlierVersionsStored(t *testing.T) {
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	old := record{Route: "r", Received: at, Size: 4, Progress: Progress{State: Dead, Attempts: 3, Reason: "refused", Last: &Answer{Status: 400, At: at}}}
	b, err := json.Marshal(old)
	must(t, err)
	got, err := decodeRecord(b)
	must(t, err)
	if !reflect.DeepEqual(got, old) {
		t.Fatalf("old JSON record read as %+v, want %+v", got, old)
	}
}

// TestNewIDSortsByArrival: an id is 12 hex digits of the arrival's
// milliseconds then 16 random ones, so ids sort by arrival and pass
// validID; two ids of one millisecond differ.
func TestNewIDSortsByArrival(t *testing.T) {
	for _, at := range []time.Time{time.UnixMilli(0), time.UnixMilli(1), time.Date(2026, 12, 7, 13, 0, 0, 0, time.UTC), time.UnixMilli(1<<48 - 1)} {
		a, b := newID(at), newID(at)
		if want := fmt.Sprintf("%012x", at.UnixMilli()); a[:12] != want || !validID(a) || a == b {
			t.Fatalf("newID(%v) = %q and %q; want the prefix %s, valid, different", at, a, b, want)
		}
		if later := newID(at.Add(time.Millisecond)); later[:12] <= a[:12] && at.UnixMilli() < 1<<48-1 {
			t.Fatalf("an id a millisecond later, %q, does not sort after %q", later, a)
		}
	}
}
