package queue

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tokengate/tokengate/signature/redistest"
)

// TestRedisReplicaDiesItsMessageIsClaimed: replica A leases a message and
// dies mid-attempt; once A's lease has run out, replica B claims it
// (XAUTOCLAIM) and delivers it; A's late outcome does not bring it back.
func TestRedisReplicaDiesItsMessageIsClaimed(t *testing.T) {
	srv := redistest.Start(t)
	open := func(name string) *RedisStore {
		s, err := OpenRedis(srv.URL(), RedisOptions{Lease: 300 * time.Millisecond, Consumer: name})
		must(t, err)
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open("a"), open("b")
	ctx := context.Background()
	m := msg("gh", t0, "body")
	must(t, a.Add(ctx, m))
	if got := lease(t, a, "gh", t0, 1); len(got) != 1 {
		t.Fatalf("replica A leased %d", len(got))
	}
	if got := lease(t, b, "gh", t0, 1); len(got) != 0 {
		t.Fatal("replica B leased a message A holds")
	}
	var got []*Message
	deadline := time.Now().Add(10 * time.Second)
	for len(got) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("replica B never claimed the message of the dead replica A within 10s")
		}
		time.Sleep(50 * time.Millisecond)
		got = lease(t, b, "gh", t0, 1)
	}
	if got[0].ID != m.ID {
		t.Fatalf("B claimed %s, want %s", got[0].ID, m.ID)
	}
	must(t, b.Ack(ctx, got[0]))
	late := *got[0]
	late.Attempts, late.Next = 1, t0
	if err := a.Retry(ctx, &late); !errors.Is(err, ErrNotFound) {
		t.Fatalf("A's late retry: %v, want ErrNotFound", err)
	}
	if got := lease(t, b, "gh", t0.Add(time.Hour), 1); len(got) != 0 {
		t.Fatal("a delivered message came back")
	}
}

// TestRedisDownIsUnavailable: with Redis stopped, Add says
// ErrUnavailable (503 for the sender), never success.
func TestRedisDownIsUnavailable(t *testing.T) {
	srv := redistest.Start(t)
	s, err := OpenRedis(srv.URL(), RedisOptions{Timeout: 300 * time.Millisecond})
	must(t, err)
	defer s.Close()
	srv.Stop()
	if err := s.Add(context.Background(), msg("gh", t0, "x")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("redis down: %v, want ErrUnavailable", err)
	}
}

// TestShutdownHandsBackMessagesLeasedAhead: messages a replica leased
// ahead but never attempted are handed back at shutdown, so another
// replica delivers them at once instead of after the lease (an hour here).
func TestShutdownHandsBackMessagesLeasedAhead(t *testing.T) {
	srv := redistest.Start(t)
	open := func(name string) *RedisStore {
		s, err := OpenRedis(srv.URL(), RedisOptions{Lease: time.Hour, Consumer: name})
		must(t, err)
		t.Cleanup(func() { s.Close() })
		return s
	}
	rc := newReceiver(t)
	started := make(chan struct{}, 10)
	rc.answer = func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-r.Context().Done() // the first attempt never answers
	}
	a := open("a")
	qa, err := New(a, Options{Routes: []RouteOptions{{Name: "gh", Concurrency: 1}}, Target: mustURL(rc.URL), Grace: 100 * time.Millisecond})
	must(t, err)
	for i := range 3 {
		enqueueOn(t, qa, "gh", fmt.Sprint(i))
	}
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- qa.Run(ctx) }()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("no attempt started within 10s")
	}
	stop()
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of its context ending")
	}
	b := open("b")
	got := lease(t, b, "gh", time.Now(), 10)
	if len(got) < 2 {
		t.Fatalf("replica B leased %d messages at once, want the 2 that A leased ahead and never attempted (and the cut one)", len(got))
	}
}

// TestRedisNewMessageGoesStraightToTheStream: a message due at arrival
// (what Enqueue stores) is in its route's stream at once, so a lease
// reads it without first moving it from the delayed set (which, under
// load, only happens once a second); one due later waits in the delayed
// set.
func TestRedisNewMessageGoesStraightToTheStream(t *testing.T) {
	srv := redistest.Start(t)
	s, err := OpenRedis(srv.URL(), RedisOptions{Consumer: "a"})
	must(t, err)
	defer s.Close()
	ctx := context.Background()
	now := msg("gh", t0, "now")
	later := msg("gh", t0, "later")
	later.Next = t0.Add(time.Minute)
	must(t, s.Add(ctx, now))
	must(t, s.Add(ctx, later))
	if n := s.c.XLen(ctx, s.rkey("gh", "s")).Val(); n != 1 {
		t.Fatalf("stream holds %d entries, want the one due at arrival", n)
	}
	if z := s.c.ZRange(ctx, s.rkey("gh", "z"), 0, -1).Val(); len(z) != 1 || z[0] != later.ID {
		t.Fatalf("delayed set %v, want only the message due later (%s)", z, later.ID)
	}
}

// countingHook counts the round trips a client makes (a pipeline is one).
type countingHook struct{ n atomic.Int64 }

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}
func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.n.Add(1); return next(ctx, cmds) }
}

// TestRedisLeaseUnderLoadIsOneRoundTrip: once the route was maintained,
// a lease of new messages reads the entries and their messages in one
// round trip (under load, a lease's latency is what delivery waits for);
// what it hands out is whole, and a message dropped before its lease is
// skipped and its entry removed.
func TestRedisLeaseUnderLoadIsOneRoundTrip(t *testing.T) {
	srv := redistest.Start(t)
	s, err := OpenRedis(srv.URL(), RedisOptions{Consumer: "a"})
	must(t, err)
	defer s.Close()
	ctx := context.Background()
	lease(t, s, "gh", t0, 1) // maintains the route now
	var want []*Message
	for i := range 3 {
		m := msg("gh", t0, fmt.Sprint("body ", i))
		must(t, s.Add(ctx, m))
		want = append(want, m)
	}
	h := &countingHook{}
	s.c.AddHook(h)
	got, err := s.Lease(ctx, "gh", t0.Add(time.Millisecond), 2)
	must(t, err)
	if n := h.n.Load(); n != 1 {
		t.Fatalf("a lease of new messages took %d round trips, want 1", n)
	}
	if len(got) != 2 || got[0].ID != want[0].ID || string(got[0].Body) != "body 0" || got[1].ID != want[1].ID || string(got[1].Body) != "body 1" {
		t.Fatalf("leased %v, want the first two messages, whole", ids(got))
	}
	must(t, s.Drop(ctx, want[2].ID))
	if got := lease(t, s, "gh", t0.Add(2*time.Millisecond), 2); len(got) != 0 {
		t.Fatalf("leased %v, a message dropped before its lease", ids(got))
	}
	if n := s.c.XLen(ctx, s.rkey("gh", "s")).Val(); n != 2 {
		t.Fatalf("stream holds %d entries, want the two leased (the dropped one's stale entry removed)", n)
	}
}
