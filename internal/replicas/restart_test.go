package replicas

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/egress/egresstest"
	"github.com/tokengate/tokengate/signature/redistest"
)

// TestRestartAfterRedisLostTheRefreshTokenDoesNotReseed: two gates share
// an authorization-code entry, each with its own refresh_token_file (a
// pod's own volume). Gate 1 stops; gate 2 rotates the refresh token on,
// then stops; Redis loses everything (FLUSHALL); gate 1 starts again. Its
// file holds a token gate 2 spent: gate 1 does not seed Redis from it
// (the file's <file>.shared says it came from Redis), answers 503 naming
// the cause, and the vendor never sees a refresh token twice. After
// `tokengate authorize`, gate 1 serves again (it notices the new consent
// while backing off), and so does gate 2, started again.
func TestRestartAfterRedisLostTheRefreshTokenDoesNotReseed(t *testing.T) {
	t.Parallel()
	bin := binary(t)
	rd := redistest.Start(t)
	srv := egresstest.NewAuthServer("deployteq-app", "app-secret", 2*time.Second)
	defer srv.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if !srv.Valid(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, "webhook executed")
	}))
	defer api.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	redirect := "http://" + ln.Addr().String() + "/callback"
	_ = ln.Close()
	config := func(dir string) string {
		return writeConfig(t, dir, "tokengate.yaml", fmt.Sprintf(`admin_listen: 127.0.0.1:0
shutdown_grace: 5s
redis:
  url: %s
  timeout: 500ms
  token_key: ${TG_TEST_REDIS_KEY}
egress:
  - name: deployteq
    listen: 127.0.0.1:0
    upstream: %s
    insecure_http: true
    wait_timeout: 5s
    token:
      grant: authorization_code
      url: %s
      authorize_url: %s
      redirect_uri: %s
      client_id: deployteq-app
      client_secret: ${TG_TEST_SECRET}
      scopes: ["apps.webhook:execute", offline_access]
      refresh_before: 1s
      timeout: 2s
      shared: redis
      refresh_token_file: %s
`, rd.URL(), api.URL, srv.TokenURL(), srv.AuthorizeURL(), redirect, filepath.Join(dir, "refresh-token")))
	}
	path1, path2 := config(t.TempDir()), config(t.TempDir())
	env := []string{"TG_TEST_SECRET=app-secret", "TG_TEST_REDIS_KEY=" + testKey}
	authorize(t, bin, path1, "deployteq", env...)
	g1, g2 := start(t, bin, path1, env...), start(t, bin, path2, env...)
	l := startLoad([]*gate{g1, g2}, "/webhooks/execute")
	eventually(t, "4 rotations", func() bool { return srv.Refreshes() >= 4 || srv.ReuseDetected() > 0 })
	g1.stop(t)
	n := srv.Refreshes()
	eventually(t, "gate 2 to rotate past gate 1's copy", func() bool { return srv.Refreshes() >= n+2 || srv.ReuseDetected() > 0 })
	l.end()
	g2.stop(t) // no refresh in flight: one would store its rotated token again after the flush
	o, err := redis.ParseURL(rd.URL())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(o)
	defer c.Close()
	if err := c.FlushAll(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	before := srv.Requests()
	g1 = start(t, bin, path1, env...)
	code, body := post(t, g1)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "gone from Redis") || !strings.Contains(body, "tokengate authorize") {
		t.Fatalf("gate 1 after the restart: %d %s", code, body)
	}
	if srv.ReuseDetected() != 0 || srv.Requests() != before {
		t.Fatalf("a refresh token was sent after Redis lost the record (reuse detected %d)", srv.ReuseDetected())
	}
	authorize(t, bin, path1, "deployteq", env...)
	g2 = start(t, bin, path2, env...)
	for i, g := range []*gate{g1, g2} {
		eventually(t, fmt.Sprintf("gate %d to serve after authorize", i+1), func() bool { c, _ := post(t, g); return c == http.StatusOK })
	}
	if srv.ReuseDetected() != 0 {
		t.Fatal("the vendor saw a refresh token twice")
	}
}

// post sends one app request through g's egress listener.
func post(t *testing.T, g *gate) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Post("http://"+g.egress+"/webhooks/execute", "application/json", strings.NewReader(`{"event":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b)
}
