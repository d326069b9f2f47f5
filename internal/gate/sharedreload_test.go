package gate

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/egress/egresstest"
	"github.com/tokengate/tokengate/signature/redistest"
)

// TestReloadSharedUnsharedSharedKeepsTheGrant: a shared
// authorization-code entry (2 s access tokens: a refresh, and a
// rotation, every 1.6 s) is reloaded unshared; it rotates the refresh
// token from its file three times while Redis keeps the token it spent
// first. Reloaded shared again, the gate does not send Redis's stale
// token: it writes its own newest token to Redis as the next generation
// and refreshes with that. The vendor (reuse detection) never revokes
// the grant, and app requests pass before and after.
func TestReloadSharedUnsharedSharedKeepsTheGrant(t *testing.T) {
	srv := egresstest.NewAuthServer("deployteq-app", "app-secret", 2*time.Second)
	t.Cleanup(srv.Close)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !srv.Valid(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, "webhook executed")
	}))
	t.Cleanup(up.Close)
	rd := redistest.Start(t)
	t.Setenv("TG_TEST_REDIS_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	path, rtFile, _ := authCodeConfig(t, srv, up.URL)
	base, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	redisBlock := "redis: { url: \"" + rd.URL() + "\", token_key: \"${TG_TEST_REDIS_KEY}\" }\n"
	write := func(shared bool) {
		t.Helper()
		y := redisBlock + string(base)
		if shared {
			y = strings.Replace(y, "      refresh_token_file: "+rtFile+"\n", "      refresh_token_file: "+rtFile+"\n      shared: redis\n", 1)
		}
		if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(true)
	authURL, out, code := runAuthorize(t, path, false, strings.NewReader(""))
	resp, err := http.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if c := waitFor(t, code, "authorize"); c != 0 {
		t.Fatalf("authorize exit %d:\n%s", c, <-out)
	}
	if printed := <-out; !strings.Contains(printed, "stored in Redis") {
		t.Fatalf("authorize did not store in Redis:\n%s", printed)
	}
	s := startAt(t, path)
	eventually(t, "an app request to pass, shared", func() bool { return executes(t, s) })

	write(false)
	if err := s.Reload(t.Context(), "test"); err != nil {
		t.Fatal(err)
	}
	n := srv.Refreshes()
	eventually(t, "three rotations, unshared", func() bool { return srv.Refreshes() >= n+3 || srv.ReuseDetected() > 0 })

	write(true)
	if err := s.Reload(t.Context(), "test"); err != nil {
		t.Fatal(err)
	}
	n = srv.Refreshes()
	eventually(t, "two rotations, shared again", func() bool { return srv.Refreshes() >= n+2 || srv.ReuseDetected() > 0 })
	if srv.ReuseDetected() != 0 {
		t.Fatal("the gate sent a refresh token it had spent: the vendor revoked the grant")
	}
	eventually(t, "an app request to pass, shared again", func() bool { return executes(t, s) })
}
