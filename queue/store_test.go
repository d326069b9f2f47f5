package queue

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengate/tokengate/signature/redistest"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// msg is a message of route that arrived at 'at' and is due then.
func msg(route string, at time.Time, body string) *Message {
	return &Message{
		ID: newID(at), DeliveryID: "d-" + body, Route: route, Method: http.MethodPost, Path: "/hooks/" + route, Query: "a=1",
		Header:   http.Header{"Content-Type": {"application/json"}, "X-Auth-Subject": {"sender"}},
		Body:     []byte(body),
		Received: at, Identity: Identity{Subject: "sender", Signature: "github"},
		Progress: Progress{State: Pending, Next: at, Expires: at.Add(time.Hour)},
	}
}

// storeKind opens a fresh, empty store of one kind.
type storeKind struct {
	name string
	open func(t *testing.T, maxBytes int64) Store
}

var prefixes atomic.Int64

// storeKinds are the file store and, when redis-server is installed (always
// in CI), the Redis store.
func storeKinds(t *testing.T) []storeKind {
	kinds := []storeKind{{"file", func(t *testing.T, maxBytes int64) Store {
		s, err := OpenFile(FileOptions{Dir: t.TempDir(), MaxBytes: maxBytes})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}}}
	srv := redistest.Start(t)
	kinds = append(kinds, storeKind{"redis", func(t *testing.T, maxBytes int64) Store {
		s, err := OpenRedis(srv.URL(), RedisOptions{MaxBytes: maxBytes, Prefix: fmt.Sprintf("{t%d}:", prefixes.Add(1))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}})
	return kinds
}

// contractCase is one behaviour every Store has.
type contractCase struct {
	name string
	run  func(t *testing.T, s Store)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func ids(ms []*Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func lease(t *testing.T, s Store, route string, now time.Time, n int) []*Message {
	t.Helper()
	ms, err := s.Lease(context.Background(), route, now, n)
	must(t, err)
	return ms
}

var contract = []contractCase{
	{"a listing is a summary without heads and bodies, whatever their size", func(t *testing.T, s Store) {
		big := msg("gh", t0, strings.Repeat("b", 1<<20))
		for i := range 30 { // a sender's head: up to 256 KiB of it
			big.Header.Set(fmt.Sprintf("X-Pad-%d", i), strings.Repeat("h", 8000))
		}
		must(t, s.Add(context.Background(), big))
		ls, err := s.List(context.Background(), "gh", Pending, 0)
		must(t, err)
		if len(ls) != 1 || ls[0].ID != big.ID || ls[0].DeliveryID != big.DeliveryID || ls[0].Body != nil || ls[0].Header != nil ||
			ls[0].State != Pending || ls[0].Route != "gh" || !ls[0].Received.Equal(big.Received) {
			t.Fatalf("listing %+v; want the message's summary, no head, no body", ls)
		}
		got, err := s.Get(context.Background(), big.ID)
		must(t, err)
		if len(got.Header) != len(big.Header) || len(got.Body) != len(big.Body) {
			t.Fatalf("Get gave %d headers and %d body bytes; want the message whole (%d, %d)", len(got.Header), len(got.Body), len(big.Header), len(big.Body))
		}
	}},
	{"a stored message comes back whole", func(t *testing.T, s Store) {
		m := msg("gh", t0, `{"x":1}`)
		must(t, s.Add(context.Background(), m))
		got, err := s.Get(context.Background(), m.ID)
		must(t, err)
		if !reflect.DeepEqual(strip(got), strip(m)) {
			t.Fatalf("got  %+v\nwant %+v", got, m)
		}
	}},
	{"only due messages are leased, each once", func(t *testing.T, s Store) {
		now, later := msg("gh", t0, "now"), msg("gh", t0, "later")
		later.Next = t0.Add(time.Hour)
		must(t, s.Add(context.Background(), now))
		must(t, s.Add(context.Background(), later))
		must(t, s.Add(context.Background(), msg("other", t0, "other route")))
		if got := ids(lease(t, s, "gh", t0, 10)); !reflect.DeepEqual(got, []string{now.ID}) {
			t.Fatalf("leased %v, want only %s", got, now.ID)
		}
		if got := lease(t, s, "gh", t0.Add(time.Minute), 10); len(got) != 0 {
			t.Fatalf("leased %v again while its lease holds", ids(got))
		}
		if got := ids(lease(t, s, "gh", t0.Add(2*time.Hour), 10)); !reflect.DeepEqual(got, []string{later.ID}) {
			t.Fatalf("leased %v at its due time, want %s", got, later.ID)
		}
	}},
	{"a lease hands out at most n", func(t *testing.T, s Store) {
		for i := range 5 {
			must(t, s.Add(context.Background(), msg("gh", t0, fmt.Sprint(i))))
		}
		if got := lease(t, s, "gh", t0, 2); len(got) != 2 {
			t.Fatalf("leased %d, want 2", len(got))
		}
		if got := lease(t, s, "gh", t0, 10); len(got) != 3 {
			t.Fatalf("leased %d, want the other 3", len(got))
		}
	}},
	{"ack removes the message and its bytes", func(t *testing.T, s Store) {
		m := msg("gh", t0, "body")
		must(t, s.Add(context.Background(), m))
		must(t, s.Ack(context.Background(), lease(t, s, "gh", t0, 1)[0]))
		if _, err := s.Get(context.Background(), m.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("after ack: %v, want ErrNotFound", err)
		}
		st, err := s.Stats(context.Background())
		must(t, err)
		if len(st) != 0 {
			t.Fatalf("stats after ack: %+v", st)
		}
	}},
	{"retry keeps attempts and answer and waits until next", func(t *testing.T, s Store) {
		must(t, s.Add(context.Background(), msg("gh", t0, "body")))
		m := lease(t, s, "gh", t0, 1)[0]
		m.Attempts, m.Next = 1, t0.Add(time.Minute)
		m.Last = &Answer{Status: 503, Body: "busy", At: t0}
		must(t, s.Retry(context.Background(), m))
		if got := lease(t, s, "gh", t0.Add(30*time.Second), 1); len(got) != 0 {
			t.Fatal("leased before its next attempt is due")
		}
		got := lease(t, s, "gh", t0.Add(time.Minute), 1)
		if len(got) != 1 || got[0].Attempts != 1 || got[0].Last == nil || got[0].Last.Status != 503 || got[0].Last.Body != "busy" {
			t.Fatalf("after retry: %+v", got)
		}
	}},
	{"a dead letter keeps its last answer, is listed and never leased", func(t *testing.T, s Store) {
		must(t, s.Add(context.Background(), msg("gh", t0, "body")))
		m := lease(t, s, "gh", t0, 1)[0]
		m.Attempts, m.Reason = 1, "refused"
		m.Last = &Answer{Status: 404, Body: "no such hook", At: t0}
		must(t, s.Bury(context.Background(), m))
		if got := lease(t, s, "gh", t0.Add(24*time.Hour), 1); len(got) != 0 {
			t.Fatal("a dead letter was leased")
		}
		dead, err := s.List(context.Background(), "gh", Dead, 0)
		must(t, err)
		if len(dead) != 1 || dead[0].State != Dead || dead[0].Reason != "refused" || dead[0].Last.Status != 404 {
			t.Fatalf("dead letters: %+v", dead)
		}
		if p, _ := s.List(context.Background(), "gh", Pending, 0); len(p) != 0 {
			t.Fatalf("a dead letter is listed pending: %v", ids(p))
		}
		st, _ := s.Stats(context.Background())
		if len(st) != 1 || st[0].Dead != 1 || st[0].Pending != 0 || st[0].Bytes == 0 {
			t.Fatalf("stats: %+v", st)
		}
	}},
	{"a revived dead letter is pending and due again", func(t *testing.T, s Store) {
		must(t, s.Add(context.Background(), msg("gh", t0, "body")))
		m := lease(t, s, "gh", t0, 1)[0]
		m.Attempts, m.Last = 25, &Answer{Status: 500, At: t0}
		must(t, s.Bury(context.Background(), m))
		later := t0.Add(100 * time.Hour)
		must(t, s.Revive(context.Background(), m.ID, Progress{Next: later, Expires: later.Add(time.Hour), Last: m.Last}))
		got := lease(t, s, "gh", later, 1)
		if len(got) != 1 || got[0].Attempts != 0 || got[0].State != Pending || !got[0].Expires.Equal(later.Add(time.Hour)) {
			t.Fatalf("revived: %+v", got)
		}
	}},
	{"reviving a waiting message makes it due now, attempts kept", func(t *testing.T, s Store) {
		must(t, s.Add(context.Background(), msg("gh", t0, "body")))
		m := lease(t, s, "gh", t0, 1)[0]
		m.Attempts, m.Next = 3, t0.Add(time.Hour)
		must(t, s.Retry(context.Background(), m))
		must(t, s.Revive(context.Background(), m.ID, Progress{Next: t0.Add(time.Second), Expires: t0.Add(time.Hour)}))
		got := lease(t, s, "gh", t0.Add(time.Second), 1)
		if len(got) != 1 || got[0].Attempts != 3 {
			t.Fatalf("revived waiting message: %+v", got)
		}
	}},
	{"a dropped message is not brought back by its attempt's outcome", func(t *testing.T, s Store) {
		must(t, s.Add(context.Background(), msg("gh", t0, "body")))
		m := lease(t, s, "gh", t0, 1)[0]
		must(t, s.Drop(context.Background(), m.ID))
		m.Attempts, m.Next = 1, t0
		if err := s.Retry(context.Background(), m); !errors.Is(err, ErrNotFound) {
			t.Fatalf("retry of a dropped message: %v, want ErrNotFound", err)
		}
		if err := s.Bury(context.Background(), m); !errors.Is(err, ErrNotFound) {
			t.Fatalf("bury of a dropped message: %v, want ErrNotFound", err)
		}
		if _, err := s.Get(context.Background(), m.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("get: %v", err)
		}
		if got := lease(t, s, "gh", t0.Add(time.Hour), 1); len(got) != 0 {
			t.Fatalf("a dropped message was leased: %v", ids(got))
		}
		if err := s.Drop(context.Background(), m.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second drop: %v", err)
		}
	}},
	{"unknown ids are not found", func(t *testing.T, s Store) {
		for _, id := range []string{newID(t0), "../../etc", ""} {
			if _, err := s.Get(context.Background(), id); !errors.Is(err, ErrNotFound) {
				t.Fatalf("get %q: %v", id, err)
			}
			if err := s.Revive(context.Background(), id, Progress{}); !errors.Is(err, ErrNotFound) {
				t.Fatalf("revive %q: %v", id, err)
			}
		}
	}},
	{"lists are oldest first and bounded", func(t *testing.T, s Store) {
		var want []string
		for i := range 4 {
			m := msg("gh", t0.Add(time.Duration(i)*time.Second), fmt.Sprint(i))
			want = append(want, m.ID)
			must(t, s.Add(context.Background(), m))
		}
		got, err := s.List(context.Background(), "gh", Pending, 3)
		must(t, err)
		if !reflect.DeepEqual(ids(got), want[:3]) {
			t.Fatalf("list %v, want %v", ids(got), want[:3])
		}
		st, _ := s.Stats(context.Background())
		if len(st) != 1 || st[0].Pending != 4 || !st[0].Oldest.Equal(t0) {
			t.Fatalf("stats: %+v", st)
		}
	}},
}

// strip leaves what a store must give back unchanged.
func strip(m *Message) Message {
	c := *m
	c.lease = ""
	return c
}

// TestStoreContract runs every contract case against every store.
func TestStoreContract(t *testing.T) {
	for _, k := range storeKinds(t) {
		for _, c := range contract {
			t.Run(k.name+"/"+c.name, func(t *testing.T) { c.run(t, k.open(t, 0)) })
		}
	}
}

// TestStoreFullRefusesNeverDrops: past max_bytes a new message is refused
// with ErrFull and every stored one is kept; a delivered one makes room.
func TestStoreFullRefusesNeverDrops(t *testing.T) {
	for _, k := range storeKinds(t) {
		t.Run(k.name, func(t *testing.T) {
			one, _ := encodePayload(msg("gh", t0, strings.Repeat("x", 100)))
			s := k.open(t, int64(3*len(one)))
			var stored []string
			for range 3 {
				m := msg("gh", t0, strings.Repeat("x", 100))
				must(t, s.Add(context.Background(), m))
				stored = append(stored, m.ID)
			}
			if err := s.Add(context.Background(), msg("gh", t0, strings.Repeat("x", 100))); !errors.Is(err, ErrFull) {
				t.Fatalf("past max_bytes: %v, want ErrFull", err)
			}
			for _, id := range stored {
				if _, err := s.Get(context.Background(), id); err != nil {
					t.Fatalf("stored message %s: %v", id, err)
				}
			}
			must(t, s.Ack(context.Background(), lease(t, s, "gh", t0, 1)[0]))
			must(t, s.Add(context.Background(), msg("gh", t0, strings.Repeat("x", 100))))
		})
	}
}
