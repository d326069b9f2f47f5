package verifier

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokengate/tokengate/verifier/verifiertest"
)

// TestReadyNeverWaitsForDiscovery: readiness (/readyz) is a memory read.
// While OIDC discovery hangs, Ready answers at once (not ready), and a
// token whose caller gives up is answered 503 when its context ends instead
// of queueing behind the discovery.
func TestReadyNeverWaitsForDiscovery(t *testing.T) {
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		select { // hang until the test ends
		case <-release:
		case <-r.Context().Done():
		}
		http.Error(w, "gone", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	j, err := NewJWT(JWTOptions{
		Name: "slow", Issuer: srv.URL, Audiences: []string{aud}, Algorithms: []string{"RS256"},
		Client: &http.Client{Timeout: time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan error, 1)
	go func() { started <- j.Start(context.Background()) }()
	defer func() {
		close(release)
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Error("Start did not return after the discovery endpoint answered")
		}
	}()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the discovery request never arrived")
	}
	ready := make(chan bool, 1)
	go func() { ready <- j.Ready() }()
	select {
	case r := <-ready:
		if r {
			t.Fatal("ready without keys")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Ready() blocked while OIDC discovery was in flight")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	verified := make(chan error, 1)
	tok := verifiertest.Sign(verifiertest.NewKey(jose.RS256), map[string]any{"iss": srv.URL, "aud": aud, "exp": time.Now().Add(time.Hour).Unix()}, nil)
	go func() { _, err := j.Verify(ctx, tok); verified <- err }()
	select {
	case err := <-verified:
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Verify did not give up when its context ended while discovery was in flight")
	}
}
