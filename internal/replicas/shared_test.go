package replicas

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/egress/egresstest"
	"github.com/tokengate/tokengate/signature/redistest"
)

// testKey is redis.token_key: base64 of 32 bytes.
const testKey = "c2hhcmVkLWVncmVzcy10ZXN0LWtleS0zMi1ieXRlcyE="

// redisContents returns every key and value in the server, hash fields
// included, as text.
func redisContents(t *testing.T, url string) string {
	t.Helper()
	o, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(o)
	defer c.Close()
	ctx := t.Context()
	var b strings.Builder
	iter := c.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		b.WriteString(k + "\n")
		switch typ := c.Type(ctx, k).Val(); typ {
		case "string":
			b.WriteString(c.Get(ctx, k).Val() + "\n")
		case "hash":
			for f, v := range c.HGetAll(ctx, k).Val() {
				b.WriteString(f + "=" + v + "\n")
			}
		default:
			t.Fatalf("key %s of type %s", k, typ)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// noneInClear fails if Redis is empty or holds any of toks.
func noneInClear(t *testing.T, url string, toks []string) {
	t.Helper()
	all := redisContents(t, url)
	if all == "" {
		t.Fatal("Redis is empty: nothing was shared")
	}
	for _, tok := range toks {
		if tok != "" && strings.Contains(all, tok) {
			t.Fatal("Redis holds a token or refresh token in clear")
		}
	}
}

// TestThreeReplicasShareOneClientCredentialsToken runs three gates with
// one shared client-credentials entry (2 s tokens, renewed 1 s before
// they expire) under app requests through each egress listener: over 10
// renewal periods the vendor sees at most 10 + 1 token requests, every
// app request reaches the API with a valid token, and Redis holds no
// token in clear. Then Redis is killed: each gate requests its own
// tokens (logged once, counted), and app requests still pass.
func TestThreeReplicasShareOneClientCredentialsToken(t *testing.T) {
	t.Parallel()
	bin := binary(t)
	rd := redistest.Start(t)
	vendor := egresstest.NewTokenEndpoint("app", "app-secret", 2*time.Second)
	defer vendor.Close()
	api := egresstest.NewUpstream(vendor)
	defer api.Close()
	dir := t.TempDir()
	path := writeConfig(t, dir, "tokengate.yaml", fmt.Sprintf(`admin_listen: 127.0.0.1:0
shutdown_grace: 5s
redis:
  url: %s
  timeout: 500ms
  token_key: ${TG_TEST_REDIS_KEY}
egress:
  - name: vendor
    listen: 127.0.0.1:0
    upstream: %s
    insecure_http: true
    wait_timeout: 10s
    token:
      url: %s
      client_id: app
      client_secret: ${TG_TEST_SECRET}
      scopes: ["things:write"]
      refresh_before: 1s
      timeout: 2s
      shared: redis
`, rd.URL(), api.URL, vendor.URL))
	env := []string{"TG_TEST_SECRET=app-secret", "TG_TEST_REDIS_KEY=" + testKey}
	gates := []*gate{start(t, bin, path, env...), start(t, bin, path, env...), start(t, bin, path, env...)}
	l := startLoad(gates, "/v1/things")
	eventually(t, "app requests through every gate", func() bool { return l.sent.Load() >= 30 })

	const periods = 10
	before, t0 := vendor.Count(), time.Now()
	time.Sleep(periods * time.Second)
	got, elapsed := vendor.Count()-before, time.Since(t0)
	t.Logf("MEASURE client_credentials: 3 replicas, %d renewal periods (2 s tokens renewed after 1 s) in %v: %d token requests at the vendor (%d since start; unshared: about %d)",
		periods, elapsed.Round(time.Millisecond), got, vendor.Count(), 3*periods)
	if got > periods+1 {
		t.Errorf("%d token requests over %d periods, want at most %d", got, periods, periods+1)
	}
	noneInClear(t, rd.URL(), vendor.Issued())

	rd.Stop()
	down := vendor.Count()
	time.Sleep(4 * time.Second)
	sent, failed, first := l.end()
	t.Logf("MEASURE redis down: %d token requests in 4 s (each gate its own); app requests %d, not passed %d", vendor.Count()-down, sent, failed)
	if failed != 0 {
		t.Fatalf("%d of %d app requests did not pass; first: %s", failed, sent, first)
	}
	for i, g := range gates {
		if n := g.count("the shared token store does not answer"); n != 1 {
			t.Errorf("gate %d logged the fallback %d times, want once", i, n)
		}
		if v, _ := strconv.Atoi(g.metric(t, `tokengate_egress_shared_tokens_total{egress="vendor",outcome="fallback"}`)); v < 1 {
			t.Errorf("gate %d counted no fallback", i)
		}
		if strings.Contains(g.log(), "tok_") {
			t.Errorf("gate %d logged a token", i)
		}
	}
}

// authorize runs `tokengate authorize NAME` with the loopback redirect
// and plays the browser; it returns the command's output.
func authorize(t *testing.T, bin, path, name string, env ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "authorize", name, "--config", path, "--timeout", "1m")
	cmd.Env = append(cmd.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		all.WriteString(sc.Text() + "\n")
		if u := strings.TrimSpace(sc.Text()); strings.HasPrefix(u, "http") {
			resp, err := http.Get(u) // the vendor consents and redirects to authorize's listener
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("authorize: %v\n%s%s", err, all.String(), stderr.String())
	}
	return all.String()
}

// TestThreeReplicasRotateOneRefreshToken runs three gates with one shared
// authorization-code entry against a vendor that rotates the refresh
// token on every use and revokes the grant when one comes back. The
// consent is given once, with `tokengate authorize` (it seeds Redis; no
// refresh token file). Through 20 rotations under app requests through
// each gate the grant is never revoked, every refresh uses the token the
// previous one stored, every app request passes, and Redis holds neither
// token in clear. Each refresh answer takes 300 ms, so the other gates
// ask while one is at the vendor.
func TestThreeReplicasRotateOneRefreshToken(t *testing.T) {
	t.Parallel()
	bin := binary(t)
	rd := redistest.Start(t)
	srv := egresstest.NewAuthServer("deployteq-app", "app-secret", 2*time.Second)
	defer srv.Close()
	srv.SetRefreshDelay(300 * time.Millisecond) // the other replicas ask while a refresh is at the vendor
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
	path := writeConfig(t, t.TempDir(), "tokengate.yaml", fmt.Sprintf(`admin_listen: 127.0.0.1:0
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
    wait_timeout: 10s
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
`, rd.URL(), api.URL, srv.TokenURL(), srv.AuthorizeURL(), redirect))
	env := []string{"TG_TEST_SECRET=app-secret", "TG_TEST_REDIS_KEY=" + testKey}
	if out := authorize(t, bin, path, "deployteq", env...); !strings.Contains(out, "stored in Redis") {
		t.Fatalf("authorize did not say it stored the token in Redis:\n%s", out)
	}
	gates := []*gate{start(t, bin, path, env...), start(t, bin, path, env...), start(t, bin, path, env...)}
	l := startLoad(gates, "/webhooks/execute")
	t0 := time.Now()
	const rotations = 20
	eventually(t, fmt.Sprintf("%d rotations", rotations), func() bool { return srv.Refreshes() >= rotations || srv.ReuseDetected() > 0 })
	elapsed := time.Since(t0)
	sent, failed, first := l.end()
	t.Logf("MEASURE authorization_code: 3 replicas, %d rotations in %v (2 s tokens renewed after 1 s): %d token requests at the vendor (1 code exchange + %d refreshes), reuse detected %d; app requests %d, not passed %d",
		srv.Refreshes(), elapsed.Round(time.Millisecond), srv.Requests(), srv.Refreshes(), srv.ReuseDetected(), sent, failed)
	if srv.ReuseDetected() != 0 {
		t.Fatal("a refresh token was sent twice: the vendor revoked the grant")
	}
	if srv.Requests() != srv.Refreshes()+1 {
		t.Errorf("%d token requests for %d refreshes and one exchange: some refresh was refused", srv.Requests(), srv.Refreshes())
	}
	if failed != 0 {
		t.Fatalf("%d of %d app requests did not pass; first: %s", failed, sent, first)
	}
	noneInClear(t, rd.URL(), srv.Issued())
}
