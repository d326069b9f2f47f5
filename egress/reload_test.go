package egress

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengate/tokengate/egress/egresstest"
)

// reloadFixture is one kind of egress entry for TestReloadKeepsWaitingRequests:
// its source options, an upstream accepting its tokens, a signal that
// the first token request is at the vendor (held there until release),
// and a check run at the end.
type reloadFixture struct {
	opts     func() SourceOptions
	upstream string
	arrived  <-chan struct{}
	release  func()
	check    func(t *testing.T)
}

func clientCredentialsReload(t *testing.T) reloadFixture {
	e := egresstest.NewTokenEndpoint(testID, testSecret, time.Hour)
	t.Cleanup(e.Close)
	arrived, gate := make(chan struct{}, 8), make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release) // before e.Close: the held answer must end
	e.Script(func(n int) egresstest.Answer {
		if n == 1 {
			arrived <- struct{}{}
			<-gate
		}
		return egresstest.Answer{}
	})
	up := egresstest.NewUpstream(e)
	t.Cleanup(up.Close)
	return reloadFixture{
		opts: func() SourceOptions {
			return SourceOptions{Name: "vendor", Token: TokenOptions{URL: e.URL, ClientID: testID, ClientSecret: testSecret}}
		},
		upstream: up.URL, arrived: arrived, release: release,
		check: func(t *testing.T) {
			if up.Refusals() != 0 {
				t.Errorf("the upstream refused %d tokens", up.Refusals())
			}
		},
	}
}

func authCodeReload(t *testing.T) reloadFixture {
	srv, o := authFixture(t)
	authorized(t, o)
	arrived, _, release := srv.StallRefreshes()
	t.Cleanup(release)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); !ok || !srv.Valid(tok) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(up.Close)
	return reloadFixture{
		opts:     func() SourceOptions { return SourceOptions{Name: "deployteq", Grant: NewRefreshGrant(o)} },
		upstream: up.URL, arrived: arrived, release: release,
		check: func(t *testing.T) {
			if srv.ReuseDetected() != 0 {
				t.Errorf("reuse detected %d: the grant was revoked", srv.ReuseDetected())
			}
		},
	}
}

// TestReloadKeepsWaitingRequests: app requests wait for the entry's first
// token while the token endpoint is slow; a reload replaces the entry's
// Source and handler the way `serve` does (the listener points at the
// new handler, the old Source is closed and its background refresh
// stopped). The waiting requests finish on their configuration: the
// token request in flight is not cancelled, and they are forwarded with
// its token (200), not answered 503 "egress stopped". For an
// authorization-code entry the new Source's refresh waits for the old
// one's and no refresh token is sent twice.
func TestReloadKeepsWaitingRequests(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fixture func(*testing.T) reloadFixture
	}{{"client credentials", clientCredentialsReload}, {"authorization code", authCodeReload}} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 5
			fx := tc.fixture(t)
			waits := make(chan struct{}, n+8)
			start := func() (*Source, *Handler, context.CancelFunc) {
				o := fx.opts()
				o.OnWait = func() { waits <- struct{}{} }
				s := NewSource(o)
				ctx, stop := context.WithCancel(context.Background())
				go s.Run(ctx)
				return s, newTestHandler(t, fx.upstream, s, nil), func() { stop(); s.Close() }
			}
			oldSrc, oldH, stopOld := start()
			defer stopOld()
			var cur atomic.Pointer[Handler]
			cur.Store(oldH)
			listener := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { cur.Load().ServeHTTP(w, r) }))
			defer listener.Close()
			waitFor(t, fx.arrived, "the first token request at the vendor")
			codes := make(chan int, n)
			for range n {
				go func() {
					resp, err := http.Post(listener.URL+"/v1/hooks", "application/json", strings.NewReader("{}"))
					if err != nil {
						codes <- 0
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					codes <- resp.StatusCode
				}()
			}
			for range n {
				waitFor(t, waits, "every request to wait for the token")
			}

			// The reload: a new Source and handler, the listener swapped, the old Source stopped.
			_, newH, stopNew := start()
			defer stopNew()
			cur.Store(newH)
			stopOld()
			if oldSrc.Ready() == nil {
				t.Fatal("the old Source holds a token before the vendor answered")
			}
			fx.release()
			for i := range n {
				if code := waitFor(t, codes, "the waiting requests' answers"); code != http.StatusOK {
					t.Errorf("waiting request %d: status %d, want 200 with the token fetched for it", i, code)
				}
			}
			resp, err := http.Post(listener.URL+"/v1/hooks", "application/json", strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("a request after the reload: status %d", resp.StatusCode)
			}
			fx.check(t)
		})
	}
}

// TestClosedSourceStopsRetrying: the token request a closed Source had in
// flight fails; the callers waiting for it get that failure as the cause
// at once, and the Source makes no further token request.
func TestClosedSourceStopsRetrying(t *testing.T) {
	e := egresstest.NewTokenEndpoint(testID, testSecret, time.Hour)
	defer e.Close()
	arrived, gate := make(chan struct{}, 1), make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	defer release()
	e.Script(func(n int) egresstest.Answer {
		if n == 1 {
			arrived <- struct{}{}
			<-gate
		}
		return egresstest.Answer{Status: http.StatusBadGateway, Body: `{"error":"temporarily_unavailable"}`}
	})
	s := newTestSource(e, func(o *SourceOptions) { o.WaitTimeout = time.Minute })
	res := make(chan error, 1)
	go func() {
		_, err := s.Token(context.Background())
		res <- err
	}()
	waitFor(t, arrived, "the token request at the vendor")
	s.Close()
	release()
	err := waitFor(t, res, "the waiting caller's answer (long before its one-minute wait_timeout)")
	var ue *UnavailableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "temporarily_unavailable") || errors.Is(err, errStopped) {
		t.Fatalf("waiting caller: %v; want the token endpoint's failure as the cause", err)
	}
	if e.Count() != 1 {
		t.Fatalf("token requests %d, want 1: a closed Source retried", e.Count())
	}
}
