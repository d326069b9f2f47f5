package signature

import (
	"context"
	"errors"
	"net/http"
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
	a, err := NewRedisStore(srv.URL(), 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, _ := NewRedisStore(srv.URL(), 300*time.Millisecond)
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
