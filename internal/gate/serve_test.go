package gate

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokengate/tokengate/verifier/verifiertest"
)

const testAud = "https://hooks.example.com"

// running is a started tokengate with its identity provider and receiver.
type running struct {
	t     *testing.T
	s     *Gate
	idp   *verifiertest.IdP
	recv  *httptest.Server
	path  string
	pub   string
	admin string
}

func gateYAML(idp *verifiertest.IdP, recv string, routes string) string {
	return fmt.Sprintf(`
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
shutdown_grace: 5s
upstream: %s
issuers:
  - name: idp
    issuer: %s
    audiences: [%s]
    timeout: 1s
routes:
%s`, recv, idp.Issuer(), testAud, routes)
}

const hooksRoute = "  - { name: hooks, path_prefix: /hooks, require: { scopes: [\"webhooks:write\"] } }\n"

func startRunning(t *testing.T, idpDown bool, configPath string) *running {
	t.Helper()
	r := &running{t: t, idp: verifiertest.New()}
	t.Cleanup(r.idp.Close)
	r.idp.SetDown(idpDown)
	r.recv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.WriteString(w, "received")
	}))
	t.Cleanup(r.recv.Close)
	r.path = configPath
	if r.path == "" {
		r.path = filepath.Join(t.TempDir(), "tokengate.yaml")
		r.write(gateYAML(r.idp, r.recv.URL, hooksRoute))
	}
	s := startAt(t, r.path)
	r.s = s
	r.pub = "http://" + s.pubLn.Addr().String()
	r.admin = "http://" + s.adminLn.Addr().String()
	return r
}

func (r *running) write(y string) {
	r.t.Helper()
	tmp := r.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(y), 0o600); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Rename(tmp, r.path); err != nil { // as editors and config tools do
		r.t.Fatal(err)
	}
}

func (r *running) get(url string) (int, string) {
	r.t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (r *running) post(path, token string) int {
	r.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, r.pub+path, strings.NewReader("{}"))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (r *running) token(scopes ...string) string {
	return r.idp.Mint(r.idp.Claims(testAud, scopes...))
}

func TestReadyzIs503UntilTheJWKSIsReachable(t *testing.T) {
	r := startRunning(t, true, "")
	code, body := r.get(r.admin + "/readyz")
	if code != 503 || !strings.Contains(body, "issuer idp") {
		t.Fatalf("readyz with the IdP down: %d %q", code, body)
	}
	if code, _ := r.get(r.admin + "/healthz"); code != 200 {
		t.Fatalf("healthz: %d", code)
	}
	if got := r.post("/hooks/a", r.token("webhooks:write")); got != 503 {
		t.Fatalf("request with the IdP down: %d, want 503", got)
	}
	r.idp.SetDown(false)
	eventually(t, "readyz 200 after the IdP came back", func() bool { c, _ := r.get(r.admin + "/readyz"); return c == 200 })
	if got := r.post("/hooks/a", r.token("webhooks:write")); got != 200 {
		t.Fatalf("request after recovery: %d", got)
	}
}

func TestReloadToABrokenConfigKeepsServingTheOldOne(t *testing.T) {
	r := startRunning(t, false, "")
	tok := r.token("webhooks:write")
	if got := r.post("/hooks/a", tok); got != 200 {
		t.Fatalf("before: %d", got)
	}
	r.write(gateYAML(r.idp, r.recv.URL, hooksRoute) + "  - { path: /x, require: { issuers: [nobody] } }\nbogus_key: 1\n")
	if err := r.s.Reload(context.Background(), "test"); err == nil {
		t.Fatal("a broken config was accepted")
	}
	if got := r.post("/hooks/a", tok); got != 200 {
		t.Fatalf("after a refused reload: %d", got)
	}
	_, metrics := r.get(r.admin + "/metrics")
	if !strings.Contains(metrics, `tokengate_config_reloads_total{result="failure"} 1`) {
		t.Fatalf("reload failure not counted:\n%s", grep(metrics, "reloads"))
	}
}

func TestReloadThatAddsARouteTakesEffectWithoutRestart(t *testing.T) {
	r := startRunning(t, false, "")
	tok := r.token("webhooks:write")
	if got := r.post("/new/a", tok); got != 404 {
		t.Fatalf("before: %d", got)
	}
	r.post("/hooks/a", tok) // cache the token
	r.write(gateYAML(r.idp, r.recv.URL, hooksRoute+"  - { name: new, path_prefix: /new }\n"))
	eventually(t, "the new route", func() bool { return r.post("/new/a", tok) == 200 })
	st := r.s.cur.Load()
	if st.Cache().Stats().Verifications != 1 {
		t.Fatalf("the cache did not survive a reload with unchanged issuers: %+v", st.Cache().Stats())
	}
}

func TestKubernetesConfigMapSymlinkSwapReloads(t *testing.T) {
	// A mounted ConfigMap: config.yaml → ..data/config.yaml, ..data → ..<timestamp>.
	dir := t.TempDir()
	idp := verifiertest.New()
	defer idp.Close()
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {}))
	defer recv.Close()
	version := func(name, y string) {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "config.yaml"), []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(name, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version("..2026_11_22_1", gateYAML(idp, recv.URL, hooksRoute))
	if err := os.Symlink("..data/config.yaml", filepath.Join(dir, "config.yaml")); err != nil {
		t.Fatal(err)
	}
	s := startAt(t, filepath.Join(dir, "config.yaml"))
	pub := "http://" + s.pubLn.Addr().String()
	status := func(path string) int {
		resp, err := http.Post(pub+path, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status("/public"); got != 404 {
		t.Fatalf("before: %d", got)
	}
	version("..2026_11_22_2", gateYAML(idp, recv.URL, hooksRoute+"  - { path: /public, public: true }\n"))
	eventually(t, "the ConfigMap update", func() bool { return status("/public") == 200 })
}

func TestMetricsCountAllowedAndDeniedUnderTheirLabels(t *testing.T) {
	r := startRunning(t, false, "")
	if got := r.post("/hooks/a", r.token("webhooks:write")); got != 200 {
		t.Fatal(got)
	}
	if got := r.post("/hooks/a", "garbage"); got != 401 {
		t.Fatal(got)
	}
	if got := r.post("/hooks/a", r.token("read")); got != 403 {
		t.Fatal(got)
	}
	_, m := r.get(r.admin + "/metrics")
	for _, want := range []string{
		`tokengate_requests_total{code="200",decision="allow",route="hooks"} 1`,
		`tokengate_requests_total{code="401",decision="invalid_token",route="hooks"} 1`,
		`tokengate_requests_total{code="403",decision="insufficient_scope",route="hooks"} 1`,
		`tokengate_cache_misses_total 3`,
		`tokengate_jwks_fetches_total{issuer="idp",result="success"}`,
		`tokengate_verification_duration_seconds_count{path="jwt"} 2`, // "garbage" is no JWT: refused before any issuer
		`tokengate_upstream_duration_seconds_count 1`,
		`tokengate_cache_entries 2`,
		`tokengate_build_info{version="dev"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s\n%s", want, grep(m, "tokengate_"))
		}
	}
	for _, leak := range []string{"aftership", "garbage", "eyJ"} {
		if strings.Contains(grep(m, "tokengate_"), leak) {
			t.Errorf("a metric label holds %q", leak)
		}
	}
}

func TestReloadDoesNotDisturbARequestInFlight(t *testing.T) {
	r := startRunning(t, false, "")
	arrived, release := make(chan struct{}), make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		close(arrived)
		<-release
		_, _ = io.WriteString(w, "late answer")
	}))
	defer slow.Close()
	r.write(gateYAML(r.idp, slow.URL, hooksRoute))
	if err := r.s.Reload(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	tok := r.token("webhooks:write")
	go func() { // no t.Fatal off the test goroutine: it would leave the test waiting
		req, _ := http.NewRequest(http.MethodPost, r.pub+"/hooks/a", strings.NewReader("{}"))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		resp.Body.Close()
		done <- result{code: resp.StatusCode}
	}()
	select {
	case <-arrived:
	case res := <-done:
		t.Fatalf("the request was answered (%d, %v) without reaching the upstream", res.code, res.err)
	case <-time.After(time.Minute):
		t.Fatal("the request reached neither the upstream nor an answer within a minute")
	}
	r.write(gateYAML(r.idp, r.recv.URL, hooksRoute+"  - { path_prefix: /new }\n"))
	if err := r.s.Reload(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
	close(release)
	select {
	case res := <-done:
		if res.err != nil || res.code != 200 {
			t.Fatalf("the request in flight during the reload got %d, %v", res.code, res.err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the request in flight during the reload had no answer within a minute")
	}
}

func TestSIGHUPRefetchesEveryJWKS(t *testing.T) {
	r := startRunning(t, false, "")
	eventually(t, "the first JWKS fetch", func() bool { return r.idp.JWKSFetches() >= 1 })
	before := r.idp.JWKSFetches()
	if err := r.s.Refresh(context.Background(), "SIGHUP"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a JWKS refetch after SIGHUP", func() bool { return r.idp.JWKSFetches() > before })
	// A key published just now verifies without waiting for an unknown kid.
	r.idp.Rotate(jose.ES256, true)
	before = r.idp.JWKSFetches()
	if err := r.s.Refresh(context.Background(), "SIGHUP"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the second refetch", func() bool { return r.idp.JWKSFetches() > before })
	if got := r.post("/hooks/a", r.token("webhooks:write")); got != 200 {
		t.Fatalf("token of the key published before SIGHUP: %d", got)
	}
}

// TestReloadThatReadsAnotherClaimDropsTheCache: verifications keep only
// the claims routes and claim headers read, so a reload that reads another
// claim must verify anew (a cached token would lack it).
func TestReloadThatReadsAnotherClaimDropsTheCache(t *testing.T) {
	var mu sync.Mutex
	var seen http.Header
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		seen = req.Header.Clone()
		mu.Unlock()
	}))
	defer recv.Close()
	r := startRunning(t, false, "")
	claims := func(extra string) string {
		return gateYAML(r.idp, recv.URL, hooksRoute) + "headers: { claims: { email: Email" + extra + " } }\n"
	}
	r.write(claims(""))
	if err := r.s.Reload(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
	c := r.idp.Claims(testAud, "webhooks:write")
	c["email"], c["tenant"] = "ops@example.com", "acme"
	tok := r.idp.Mint(c)
	header := func(name string) string {
		t.Helper()
		if code := r.post("/hooks/a", tok); code != 200 {
			t.Fatalf("post: %d", code)
		}
		mu.Lock()
		defer mu.Unlock()
		return seen.Get(name)
	}
	if got := header("X-Auth-Email"); got != "ops@example.com" {
		t.Fatalf("X-Auth-Email = %q", got)
	}
	r.write(claims(", tenant: Tenant"))
	if err := r.s.Reload(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
	if got := header("X-Auth-Tenant"); got != "acme" {
		t.Fatalf("X-Auth-Tenant after the reload that names it = %q, want acme (a cached verification without the claim was reused)", got)
	}
}
