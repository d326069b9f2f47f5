package ratelimit

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/redisconn"
	"github.com/tokengate/tokengate/signature/redistest"
)

// client opens a client on url as the gate does (redisconn), closed at
// the test's end.
func client(t *testing.T, url string, timeout time.Duration) *redis.Client {
	t.Helper()
	c, err := redisconn.New(&config.Redis{URL: url, Timeout: config.Duration(timeout)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// slow is a limit whose tokens do not come back within a test.
var slow = Limit{Rate: 1, Per: time.Hour, Burst: 5}

func TestPerSecond(t *testing.T) {
	for _, c := range []struct {
		in   float64
		want Limit
	}{
		{5, Limit{Rate: 5, Per: time.Second, Burst: 3}},
		{0.5, Limit{Rate: 1800, Per: time.Hour, Burst: 3}},
		{1.25, Limit{Rate: 4500, Per: time.Hour, Burst: 3}},
		{0, Limit{Burst: 3}},
	} {
		if got := PerSecond(c.in, 3); got != c.want {
			t.Errorf("PerSecond(%v) = %+v, want %+v", c.in, got, c.want)
		}
	}
	if got := RetryAfter(1100 * time.Millisecond); got != "2" {
		t.Errorf("RetryAfter(1.1s) = %s, want 2 (rounded up)", got)
	}
	if got := RetryAfter(0); got != "1" {
		t.Errorf("RetryAfter(0) = %s, want 1 (at least a second)", got)
	}
}

// TestReplicasShareOneBudget: two replicas (two clients, two Keyed)
// taking alternately from one key get one burst between them, not one
// each; another key and another family have buckets of their own.
func TestReplicasShareOneBudget(t *testing.T) {
	srv := redistest.Start(t)
	a := New("route:a", slow, Options{Shared: NewRedis(client(t, srv.URL(), time.Second), RedisOptions{})})
	b := New("route:a", slow, Options{Shared: NewRedis(client(t, srv.URL(), time.Second), RedisOptions{})})
	ctx := context.Background()
	accepted := 0
	for i := range 20 {
		r := a
		if i%2 == 1 {
			r = b
		}
		if ok, _ := r.Take(ctx, "sender"); ok {
			accepted++
		}
	}
	if accepted != slow.Burst {
		t.Fatalf("two replicas accepted %d of 20 requests of one sender, want the one burst %d", accepted, slow.Burst)
	}
	ok, wait := b.Take(ctx, "sender")
	if ok || wait < 30*time.Minute {
		t.Fatalf("past the burst: ok=%v wait=%v, want refused with a wait near an hour (1/h)", ok, wait)
	}
	if ok, _ := a.Take(ctx, "other"); !ok {
		t.Fatal("another key shared the sender's bucket")
	}
	c := New("route:b", slow, Options{Shared: a.shared})
	if ok, _ := c.Take(ctx, "sender"); !ok {
		t.Fatal("another family shared route:a's bucket")
	}
}

// TestKeysCannotCollide: the family and the key are length-prefixed
// before hashing, so a key that spells another family's name and key
// never reaches its bucket.
func TestKeysCannotCollide(t *testing.T) {
	srv := redistest.Start(t)
	shared := NewRedis(client(t, srv.URL(), time.Second), RedisOptions{})
	ctx := context.Background()
	one := Limit{Rate: 1, Per: time.Hour, Burst: 1}
	x := New("route:a", one, Options{Shared: shared})
	y := New("route:", one, Options{Shared: shared})
	if ok, _ := x.Take(ctx, "b"); !ok {
		t.Fatal("first request refused")
	}
	if ok, _ := y.Take(ctx, "ab"); !ok {
		t.Fatal(`family "route:" key "ab" shares the bucket of family "route:a" key "b"`)
	}
	if ok, _ := New("route:a\x00", one, Options{Shared: shared}).Take(ctx, "b"); !ok {
		t.Fatal("a family name with a NUL shares another's bucket")
	}
	if redisKey("a", "bc") == redisKey("ab", "c") {
		t.Fatal("redisKey joins without length prefixes")
	}
}

// TestPeekTakesNothing: reading a bucket (check --token, the Token URL's
// failure check) never takes a token.
func TestPeekTakesNothing(t *testing.T) {
	srv := redistest.Start(t)
	k := New("route:a", slow, Options{Shared: NewRedis(client(t, srv.URL(), time.Second), RedisOptions{})})
	ctx := context.Background()
	if ok, _ := k.Take(ctx, "s"); !ok {
		t.Fatal("first take refused")
	}
	for range 50 {
		st, err := k.Peek(ctx, "s")
		if err != nil {
			t.Fatal(err)
		}
		if st.Tokens < 3.9 || st.Tokens > 4.1 || st.Wait != 0 {
			t.Fatalf("peek after one take of five: %+v, want about 4 tokens and no wait", st)
		}
		if spent, _ := k.Spent(ctx, "s"); spent {
			t.Fatal("Spent says empty with 4 tokens left")
		}
	}
	for i := range 4 {
		if ok, _ := k.Take(ctx, "s"); !ok {
			t.Fatalf("take %d of the 4 left refused: a peek took a token", i+2)
		}
	}
	st, err := k.Peek(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	if st.Tokens >= 1 || st.Wait < 30*time.Minute {
		t.Fatalf("empty bucket peeked as %+v, want < 1 token and a wait near an hour", st)
	}
	if spent, wait := k.Spent(ctx, "s"); !spent || wait < 30*time.Minute {
		t.Fatalf("Spent on an empty bucket: %v %v", spent, wait)
	}
	if st, _ := k.Peek(ctx, "never-seen"); st.Tokens != float64(slow.Burst) {
		t.Fatalf("an unseen key peeked as %+v, want a full bucket", st)
	}
}

// TestRedisDownCountsInMemory: with Redis stopped, a request the limit
// allows is allowed (in memory, each decision counted for the metric),
// the memory bucket still limits, Redis is tried again after the retry
// interval, and once it answers the replicas share again.
func TestRedisDownCountsInMemory(t *testing.T) {
	srv := redistest.Start(t)
	var now atomic.Int64
	now.Store(time.Unix(1_000_000, 0).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	shared := NewRedis(client(t, srv.URL(), 500*time.Millisecond), RedisOptions{Now: clock, Retry: time.Second})
	var fallbacks atomic.Int32
	k := New("route:a", Limit{Rate: 1, Per: time.Hour, Burst: 2}, Options{Shared: shared, Now: clock, OnFallback: func() { fallbacks.Add(1) }})
	ctx := context.Background()
	if ok, _ := k.Take(ctx, "s"); !ok {
		t.Fatal("first take refused")
	}
	srv.Stop()
	for i := range 2 {
		if ok, _ := k.Take(ctx, "s"); !ok {
			t.Fatalf("take %d with Redis down refused: an outage must not refuse what memory allows", i+1)
		}
	}
	if ok, _ := k.Take(ctx, "s"); ok {
		t.Fatal("the memory bucket did not limit while Redis was down")
	}
	if n := fallbacks.Load(); n != 3 {
		t.Fatalf("%d fallbacks counted, want 3", n)
	}
	if shared.downUntil.Load() == 0 {
		t.Fatal("Redis not marked down after failing")
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if _, err := shared.Peek(ctx, "route:a", "s", k.limit); err != ErrDown {
		t.Fatalf("within the retry interval Redis was asked (err %v), want ErrDown", err)
	}
	now.Add(int64(2 * time.Second))
	// Redis, restarted empty, holds a full bucket: the probe succeeds.
	if ok, _ := k.Take(ctx, "s"); !ok {
		t.Fatal("after the retry interval the take was not made in Redis")
	}
	if shared.downUntil.Load() != 0 {
		t.Fatal("a successful probe did not put Redis back in use")
	}
}

// TestSlowRedisIsBounded: a Redis whose replies are held back costs a
// request at most the timeout; the request is decided in memory, and the
// next ones do not wait at all while the retry interval runs.
func TestSlowRedisIsBounded(t *testing.T) {
	srv := redistest.Start(t)
	stall := redistest.NewStall(t, srv.Addr())
	k := New("route:a", slow, Options{Shared: NewRedis(client(t, stall.URL(), 300*time.Millisecond), RedisOptions{Retry: time.Hour})})
	ctx := context.Background()
	if ok, _ := k.Take(ctx, "s"); !ok { // connects while replies flow
		t.Fatal("first take refused")
	}
	stall.Hold()
	defer stall.Resume()
	done := make(chan bool, 1)
	go func() { ok, _ := k.Take(ctx, "s"); done <- ok }()
	select {
	case ok := <-done:
		if !ok {
			t.Fatal("a take refused because Redis was slow")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a take waited 10s on a stalled Redis; its timeout is 300ms")
	}
	start := time.Now()
	for range 3 {
		if ok, _ := k.Take(ctx, "s"); !ok {
			t.Fatal("refused while Redis is out of use")
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("3 takes while Redis is out of use took %v: they must not wait for it", d)
	}
}
