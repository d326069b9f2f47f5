package egress

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/egress/egresstest"
	"github.com/tokengate/tokengate/signature/redistest"
)

// TestNewConsentEndsTheBackoff: a replica of a shared authorization-code
// entry runs before anyone authorized it: its token requests fail
// (authorization required) and it backs off for 15 s or more. Then
// `tokengate authorize` (run elsewhere: another store and file) stores a
// consent in Redis. The replica notices the new generation (one HGET a
// second while failing) and retries at once: an app request gets a
// token within 10 s, well before its backoff would have ended.
func TestNewConsentEndsTheBackoff(t *testing.T) {
	srv := egresstest.NewAuthServer("deployteq-app", "app-secret", time.Hour)
	defer srv.Close()
	rd := redistest.Start(t)
	x, xo := acReplica(t, srv, rd.URL(), 2*time.Second)
	_, operator := acReplica(t, srv, rd.URL(), 2*time.Second)
	src := NewSource(SourceOptions{Name: "deployteq", Token: xo.Token, Grant: NewRefreshGrant(xo), Shared: x.store,
		WaitTimeout: 2 * time.Second, MinBackoff: 30 * time.Second, MaxBackoff: time.Minute})
	defer src.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go src.Run(ctx)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !srv.Valid(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	defer up.Close()
	h := newTestHandler(t, up.URL, src, nil)
	eventually(t, "the first token request to fail", func() bool { return src.Status().Failures > 0 })
	if st := src.Status(); time.Until(st.RetryAt) < 10*time.Second {
		t.Fatalf("backing off until %v only: the test needs a longer backoff", time.Until(st.RetryAt))
	}
	authorizeShared(t, operator)
	deadline := time.Now().Add(10 * time.Second)
	for serveOne(h) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("no token 10 s after authorize (backing off until %v from now): %v", time.Until(src.Status().RetryAt).Round(time.Second), src.Ready())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := src.Ready(); err != nil {
		t.Fatalf("not ready after an app request got a token: %v", err)
	}
	if srv.ReuseDetected() != 0 {
		t.Fatal("the vendor saw a refresh token twice")
	}
}
