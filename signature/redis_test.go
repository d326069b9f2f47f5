package signature

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/tokengate/signature/redistest"
)

// TestRedisStoreAcrossReplicas: two clients (two replicas) of one real
// redis-server: a message claimed by one is a replay for the other; with
// the server stopped the verdict is "store unavailable", never a pass;
// after a restart the same clients work again.
func TestRedisStoreAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	a, err := NewRedisStore(srv.URL(), RedisOptions{Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, _ := NewRedisStore(srv.URL(), RedisOptions{Timeout: 300 * time.Millisecond})
	defer b.Close()
	ctx := context.Background()
	gh := vectors[2]
	replica := func(s Store) *Verifier { return newAt(t, gh, time.Now(), s) }

	r, err := replica(a).Verify(ctx, gh.header, []byte(gh.body))
	if err != nil {
		t.Fatalf("replica A, first delivery: %v", err)
	}
	if _, err := replica(b).Verify(ctx, gh.header, []byte(gh.body)); !errors.Is(err, ErrInFlight) {
		t.Fatalf("replica B, same message: %v, want it in flight", err)
	}
	if err := r.Settle(ctx, false); err != nil {
		t.Fatal(err)
	}
	if _, err := replica(b).Verify(ctx, gh.header, []byte(gh.body)); err != nil {
		t.Fatalf("replica B after A forgot the message: %v", err)
	}

	other := http.Header{"X-Hub-Signature-256": {githubSign(gh.secrets[0], "{}")}}
	srv.Stop()
	if _, err := replica(a).Verify(ctx, other, []byte("{}")); !errors.Is(err, ErrStoreUnavailable) || reason(err) != ReasonUnavailable {
		t.Fatalf("redis down: %v, want %q", err, ReasonUnavailable)
	}
	open, _ := New(Options{Scheme: GitHub, Secrets: gh.secrets, Store: a, FailOpen: true})
	if rc, err := open.Verify(ctx, other, []byte("{}")); err != nil || rc.StoreErr == nil {
		t.Fatalf("redis down, failing open: receipt %+v, %v; want a pass that says the store failed", rc, err)
	}
	srv.Start()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := replica(a).Verify(ctx, other, []byte("{}"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis back, client still failing: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := replica(b).Verify(ctx, other, []byte("{}")); !errors.Is(err, ErrInFlight) {
		t.Fatalf("after the restart, replica B: %v, want it in flight", err)
	}
}

// TestRedisStoreClaimsAreOwned: against a real redis-server, a claim found
// again by its own owner (a retried command) is won; only the owner
// releases an in-flight claim; a taken message is never released; a
// release that fails while Redis is down is retried in the background and
// lands once Redis is back; Close stops the retries.
func TestRedisStoreClaimsAreOwned(t *testing.T) {
	srv := redistest.Start(t)
	r, err := NewRedisStore(srv.URL(), RedisOptions{Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	lease := time.Minute
	tk := func(key, owner string) Ticket {
		return Ticket{Scope: "r", Key: key, Owner: owner, Until: time.Now().Add(lease)}
	}
	claim := func(tt Ticket) State {
		t.Helper()
		s, err := r.Claim(ctx, tt, lease)
		if err != nil {
			t.Fatalf("claim %s by %s: %v", tt.Key, tt.Owner, err)
		}
		return s
	}
	tests := []struct {
		name string
		do   func()
		t    Ticket
		want State
	}{
		{"new", func() {}, tk("a", "o1"), Fresh},
		{"the same owner again", func() {}, tk("a", "o1"), Fresh},
		{"another owner", func() {}, tk("a", "o2"), InFlight},
		{"released by a stranger", func() { _ = r.Release(ctx, tk("a", "o2")) }, tk("a", "o3"), InFlight},
		{"released by its owner", func() { _ = r.Release(ctx, tk("a", "o1")) }, tk("a", "o4"), Fresh},
		{"taken", func() { _ = r.Take(ctx, tk("a", "o4"), lease) }, tk("a", "o5"), Taken},
		{"taken, then a release", func() { _ = r.Release(ctx, tk("a", "o4")) }, tk("a", "o6"), Taken},
		{"taken by a request whose lease ran out", func() { _ = r.Take(ctx, tk("b", "late"), lease) }, tk("b", "o7"), Taken},
	}
	for _, tc := range tests {
		tc.do()
		if got := claim(tc.t); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}

	claim(tk("c", "o8"))
	srv.Stop()
	if err := r.Release(ctx, tk("c", "o8")); err == nil {
		t.Fatal("release with Redis down: no error")
	}
	if n := r.PendingReleases(); n != 1 {
		t.Fatalf("%d releases retried in the background, want 1", n)
	}
	srv.Start()
	deadline := time.Now().Add(10 * time.Second)
	for r.PendingReleases() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("waited 10s for the release to be retried once Redis was back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := claim(tk("c", "o9")); got != Fresh {
		t.Fatalf("after the background release: %v, want Fresh", got)
	}

	srv.Stop()
	_ = r.Release(ctx, tk("c", "o9"))
	r.Close() // the retry stops (goleak checks it)
	if n := r.PendingReleases(); n != 0 {
		t.Fatalf("%d releases still retried after Close", n)
	}
}

// TestRedisTakeIsRetriedUntilItLands: a take (a delivered message) that
// fails while Redis is down is retried in the background: meanwhile this
// store answers a copy as taken without asking Redis; once Redis is back
// the take lands, and another replica finds the message taken; Close
// stops the retries.
func TestRedisTakeIsRetriedUntilItLands(t *testing.T) {
	srv := redistest.Start(t)
	a, err := NewRedisStore(srv.URL(), RedisOptions{Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, _ := NewRedisStore(srv.URL(), RedisOptions{Timeout: 300 * time.Millisecond})
	defer b.Close()
	ctx := context.Background()
	tk := Ticket{Scope: "r", Key: "k", Owner: "o1", Until: time.Now().Add(time.Minute)}
	if s, err := a.Claim(ctx, tk, time.Minute); err != nil || s != Fresh {
		t.Fatalf("claim: %v %v", s, err)
	}
	srv.Stop()
	if err := a.Take(ctx, tk, time.Hour); err == nil {
		t.Fatal("take with Redis down: no error")
	}
	if n := a.PendingTakes(); n != 1 {
		t.Fatalf("%d takes retried in the background, want 1", n)
	}
	if s, err := a.Claim(ctx, Ticket{Scope: "r", Key: "k", Owner: "o2"}, time.Minute); err != nil || s != Taken {
		t.Fatalf("a copy while the take is retried: %v %v, want Taken", s, err)
	}
	srv.Start()
	deadline := time.Now().Add(10 * time.Second)
	for a.PendingTakes() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("waited 10s for the take to land once Redis was back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s, err := b.Claim(ctx, Ticket{Scope: "r", Key: "k", Owner: "o3"}, time.Minute); err != nil || s != Taken {
		t.Fatalf("another replica after the take landed: %v %v, want Taken", s, err)
	}

	srv.Stop()
	_ = a.Take(ctx, Ticket{Scope: "r", Key: "k2", Owner: "o4"}, time.Hour)
	a.Close() // the retry stops (goleak checks it)
	if n := a.PendingTakes(); n != 0 {
		t.Fatalf("%d takes still retried after Close", n)
	}
}

// TestReleaseRetryEndsWithTheLease: a release retried in the background
// (the store unreachable) ends with the claim's lease, read by the store's
// clock: Redis expires the claim by itself then. A release whose lease is
// already over is not retried at all. The clock is advanced, not waited
// for; the store answers nothing (every release fails).
func TestReleaseRetryEndsWithTheLease(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	r := newRetrier(maxPendingReleases, clock)
	defer r.close()
	unreachable := func(context.Context) error { return errors.New("store unreachable") }
	r.retry("short", clock().Add(time.Minute), unreachable)
	r.retry("long", clock().Add(time.Hour), unreachable)
	if n := r.Pending(); n != 2 {
		t.Fatalf("%d releases retried, want 2", n)
	}
	mu.Lock()
	now = now.Add(time.Minute) // the short lease is over, the long one is not
	mu.Unlock()
	for deadline := time.Now().Add(10 * time.Second); r.Pending() > 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a release was still retried 10s after its claim's lease ended (by the store's clock)")
		}
	}
	r.retry("over", clock(), unreachable)
	if n := r.Pending(); n != 1 {
		t.Fatalf("%d releases retried, want only the long lease's: one whose lease is over is not retried", n)
	}
	r.close()
	if n := r.Pending(); n != 0 {
		t.Fatalf("%d releases still retried after close", n)
	}
}
