package queue

import (
	"context"
	"errors"
	"testing"
	"time"

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
