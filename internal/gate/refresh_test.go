package gate

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/egress/egresstest"
)

// consented is a Deployteq-like vendor (rotating refresh tokens, reuse
// detection), an upstream that takes only its access tokens, and an
// egress-only config whose entry an operator has authorized with
// `tokengate authorize`.
func consented(t *testing.T) (srv *egresstest.AuthServer, path, rtFile string) {
	t.Helper()
	srv = egresstest.NewAuthServer("deployteq-app", "app-secret", time.Hour)
	t.Cleanup(srv.Close)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !srv.Valid(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, "webhook executed")
	}))
	t.Cleanup(up.Close)
	path, rtFile, _ = authCodeConfig(t, srv, up.URL)
	authURL, out, code := runAuthorize(t, path, false, strings.NewReader(""))
	resp, err := http.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if c := waitFor(t, code, "authorize"); c != 0 {
		t.Fatalf("authorize exit %d:\n%s", c, <-out)
	}
	<-out
	return srv, path, rtFile
}

// executes reports whether an app request through the egress reaches the
// vendor's API within the entry's wait_timeout.
func executes(t *testing.T, s *Gate) bool {
	t.Helper()
	resp, err := http.Post("http://"+s.eg.addrs()["deployteq"]+"/webhooks/execute", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode == http.StatusOK && string(b) == "webhook executed"
}

// TestReloadDuringARefreshKeepsTheGrant: the gate's refresh is at the
// vendor (rotated there, answer not yet back) when a reload rebuilds the
// authorization-code entry. The refresh in flight finishes and stores the
// rotated token before the new entry refreshes with it: the vendor never
// sees a refresh token twice and does not revoke the grant.
func TestReloadDuringARefreshKeepsTheGrant(t *testing.T) {
	srv, path, _ := consented(t)
	arrived, abandoned, release := srv.StallRefreshes()
	defer release()
	s := startAt(t, path)
	waitFor(t, arrived, "the gate's first refresh at the vendor")
	y, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(y), "wait_timeout: 2s", "wait_timeout: 3s", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(t.Context(), "test"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-arrived:
		t.Error("the reloaded entry sent a refresh while the first was at the vendor")
	case <-abandoned:
		t.Error("the reload cancelled the refresh at the vendor after it rotated the token")
	case <-time.After(time.Second):
	}
	release()
	eventually(t, "an app request to pass", func() bool { return executes(t, s) })
	if n := srv.ReuseDetected(); n != 0 {
		t.Fatalf("the vendor saw a refresh token twice (%d) and revoked the grant", n)
	}
}

// TestShutdownDuringARefreshStoresTheRotatedToken: SIGTERM arrives while
// the gate's refresh is at the vendor. Shutdown waits (within
// shutdown_grace) for it to finish and store the rotated refresh token;
// the next start refreshes with that one, and the grant lives on.
func TestShutdownDuringARefreshStoresTheRotatedToken(t *testing.T) {
	srv, path, rtFile := consented(t)
	before := fileContent(t, rtFile)
	arrived, abandoned, release := srv.StallRefreshes()
	defer release()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := start(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, arrived, "the gate's first refresh at the vendor")
	stopped := make(chan error, 1)
	go func() { cancel(); stopped <- s.Shutdown(context.Background()) }()
	select {
	case <-abandoned:
		t.Error("shutdown cancelled the refresh at the vendor after it rotated the token")
	case <-stopped:
		t.Error("shutdown returned while a refresh was at the vendor")
		stopped <- nil
	case <-time.After(time.Second):
	}
	release()
	waitFor(t, stopped, "shutdown")
	if fileContent(t, rtFile) == before {
		t.Fatal("the refresh token the vendor rotated during shutdown was not stored")
	}
	s = startAt(t, path)
	eventually(t, "an app request after the restart to pass", func() bool { return executes(t, s) })
	if n := srv.ReuseDetected(); n != 0 {
		t.Fatalf("the restarted gate sent a spent refresh token (%d): the grant is revoked", n)
	}
}
