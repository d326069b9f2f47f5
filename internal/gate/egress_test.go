package gate

import (
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

	"golang.org/x/crypto/bcrypt"

	"github.com/tokengate/tokengate/egress/egresstest"
)

// recorder is a receiver that keeps what tokengate forwarded.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	seen []*http.Request
	body []string
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.seen = append(r.seen, req.Clone(req.Context()))
		r.body = append(r.body, string(b))
		r.mu.Unlock()
		_, _ = io.WriteString(w, "received")
	}))
	t.Cleanup(r.Close)
	return r
}

// count is how many requests the receiver got.
func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

func (r *recorder) last() (*http.Request, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.seen) == 0 {
		return nil, ""
	}
	return r.seen[len(r.seen)-1], r.body[len(r.body)-1]
}

const egressSecret = "egr+ss/s3cret=" // needs form-encoding in Basic

// TestEgressEveryAuthStyleEndToEnd: app → egress listener → tokengate's
// own gate → receiver, once per token request shape, every token from
// tokengate's embedded Token URL (which accepts all four shapes).
func TestEgressEveryAuthStyleEndToEnd(t *testing.T) {
	recv := newRecorder(t)
	pub := freeAddr(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte(egressSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hash, _ := bcrypt.GenerateFromPassword([]byte(egressSecret), bcrypt.MinCost)
	all := "apps.webhook:execute webhooks:write * *:webhooks/**"
	styles := []struct{ auth, scope, granted string }{
		{"basic", "apps.webhook:execute", "apps.webhook:execute"}, // Deployteq
		{"form", "webhooks:write", "webhooks:write"},              // AfterShip's shape
		{"json", "*", all}, // MyParcel.com: "*" asks for every scope
		{"multipart", "*:webhooks/**", "*:webhooks/**"}, // Akamai
	}
	var entries strings.Builder
	for _, s := range styles {
		fmt.Fprintf(&entries, `
  - name: %[1]s
    listen: 127.0.0.1:0
    upstream: http://%[2]s/hooks/%[1]s
    insecure_http: true
    token:
      url: http://%[2]s/oauth2/token
      client_id: sender
      client_secret_file: secret
      auth: %[1]s
      scopes: [%[3]q]
`, s.auth, pub, s.scope)
	}
	y := fmt.Sprintf(`
listen: %[1]s
admin_listen: 127.0.0.1:0
shutdown_grace: 5s
upstream: %[2]s
token_endpoint:
  issuer: http://%[1]s
  clients:
    - client_id: sender
      client_secret_hash: %[3]q
      scopes: [%[5]s]
routes:
  - path_prefix: /hooks
    methods: [POST]
    require: { issuers: [local] }
egress:%[4]s`, pub, recv.URL, hash, entries.String(), `"`+strings.ReplaceAll(all, " ", `", "`)+`"`)
	path := filepath.Join(dir, "tokengate.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startAt(t, path)
	addrs := s.eg.addrs()
	for _, st := range styles {
		t.Run(st.auth, func(t *testing.T) {
			body := `{"shape":"` + st.auth + `"}`
			req, _ := http.NewRequest(http.MethodPost, "http://"+addrs[st.auth]+"/order?id=7", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer the-app-must-not-choose")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(b) != "received" {
				t.Fatalf("status %d body %q", resp.StatusCode, b)
			}
			got, gotBody := recv.last()
			if got.URL.Path != "/hooks/"+st.auth+"/order" || got.URL.RawQuery != "id=7" || gotBody != body {
				t.Errorf("receiver got %s?%s %q", got.URL.Path, got.URL.RawQuery, gotBody)
			}
			if got.Header.Get("X-Auth-Client-Id") != "sender" || got.Header.Get("X-Auth-Scope") != st.granted {
				t.Errorf("identity %q scope %q, want sender %q", got.Header.Get("X-Auth-Client-Id"), got.Header.Get("X-Auth-Scope"), st.granted)
			}
		})
	}
	// A web page cannot use the loopback listener: not by DNS rebinding
	// (its own name as Host), not by a cross-site POST.
	before := recv.count()
	for _, tc := range []struct {
		host, origin string
		want         int
	}{{"rebound.example:80", "", http.StatusMisdirectedRequest}, {"", "https://evil.example", http.StatusForbidden}} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addrs["form"]+"/order", strings.NewReader("{}"))
		if tc.host != "" {
			req.Host = tc.host
		}
		if tc.origin != "" {
			req.Header.Set("Origin", tc.origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("Host %q Origin %q: status %d, want %d", tc.host, tc.origin, resp.StatusCode, tc.want)
		}
	}
	if n := recv.count(); n != before {
		t.Errorf("a web page's request reached the receiver (%d new)", n-before)
	}
	metrics := get(t, "http://"+s.adminLn.Addr().String()+"/metrics")
	for _, want := range []string{
		`tokengate_egress_requests_total{code="421",egress="form"} 1`,
		`tokengate_egress_token_requests_total{egress="json",result="success"} 1`,
		`tokengate_egress_token_requests_total{egress="multipart",result="success"} 1`,
		`tokengate_egress_requests_total{code="200",egress="basic"} 1`,
		`tokengate_egress_token_expiry_seconds{egress="form"} 3`, // 3599.x of a 1h token
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(metrics, egressSecret) {
		t.Error("the client secret appears in the metrics")
	}
	if ready := get(t, "http://"+s.adminLn.Addr().String()+"/readyz"); ready != "ready\n" {
		t.Errorf("readyz %q", ready)
	}
}

// startVendorEgress starts an egress-only tokengate whose one entry,
// "vendor", calls up with tokens from e, sending secret (from the
// environment); extra is one more line of the entry.
func startVendorEgress(t *testing.T, e *egresstest.TokenEndpoint, up *egresstest.Upstream, secret, extra string) *Gate {
	t.Helper()
	t.Setenv("TG_TEST_EGRESS_SECRET", secret)
	return startYAML(t, fmt.Sprintf(`
admin_listen: 127.0.0.1:0
egress:
  - name: vendor
    listen: 127.0.0.1:0
    upstream: %s
    insecure_http: true
    %s
    token: { url: %s, client_id: client, client_secret: "${TG_TEST_EGRESS_SECRET}" }
`, up.URL, extra, e.URL))
}

// TestEgressRefreshesInTheBackground: the running gate renews an egress
// token before it expires without any request asking for it: with 2 s
// tokens and a request every 50 ms for 3.5 s, no request waits for a token
// (tokengate_egress_token_waits_total stays 0) and none carries an expired
// one (the upstream checks every token).
func TestEgressRefreshesInTheBackground(t *testing.T) {
	e, up := vendor(t, "right-secret", 2*time.Second)
	s := startVendorEgress(t, e, up, "right-secret", "")
	admin := "http://" + s.adminLn.Addr().String()
	for i := 0; get(t, admin+"/readyz") != "ready\n"; i++ {
		if i == 100 {
			t.Fatal("the egress never got its first token")
		}
		time.Sleep(20 * time.Millisecond)
	}
	target := "http://" + s.eg.addrs()["vendor"] + "/v1/hooks"
	for end := time.Now().Add(3500 * time.Millisecond); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Post(target, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	if n := up.Refusals(); n != 0 {
		t.Fatalf("%d requests carried an expired or unknown token", n)
	}
	if m := get(t, admin+"/metrics"); !strings.Contains(m, `tokengate_egress_token_waits_total{egress="vendor"} 0`) {
		t.Errorf("requests waited for a token:\n%s", grepLines(m, "tokengate_egress_token_waits_total"))
	}
	// The first token, then one every 1.6 s: 3 in 3.5 s (4 with timing slack).
	if n := e.Count(); n < 3 || n > 4 {
		t.Errorf("token requests %d in 3.5 s of 2 s tokens, want 3..4", n)
	}
}

// TestEgressOnlyNotReady: an egress-only configuration runs without a
// public listener; with refused credentials /readyz names the cause, the
// app gets 503 JSON, and nothing reaches the upstream.
func TestEgressOnlyNotReady(t *testing.T) {
	e, up := vendor(t, "right-secret", time.Hour)
	s := startVendorEgress(t, e, up, "wrong-secret", "wait_timeout: 1s")
	if s.pubLn != nil {
		t.Fatal("an egress-only config opened a public listener")
	}
	admin := "http://" + s.adminLn.Addr().String()
	var ready string
	for range 50 {
		if ready = get(t, admin+"/readyz"); strings.Contains(ready, "invalid_client") {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(ready, "not ready: egress vendor") || !strings.Contains(ready, "invalid_client") {
		t.Fatalf("readyz %q, want not ready naming the egress and invalid_client", ready)
	}
	resp, err := http.Post("http://"+s.eg.addrs()["vendor"]+"/x", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), `"egress":"vendor"`) || strings.Contains(string(b), "wrong-secret") {
		t.Fatalf("status %d body %s", resp.StatusCode, b)
	}
	if len(up.Seen()) != 0 {
		t.Fatal("a request without a token reached the upstream")
	}
	if m := get(t, admin+"/metrics"); !strings.Contains(m, `tokengate_egress_token_requests_total{egress="vendor",result="invalid_client"}`) {
		t.Error("the invalid_client failure is not in the metrics")
	}
}

// TestEgressReload: a reload that changes one entry rebuilds that one;
// the unchanged entry keeps its token (no new token request).
func TestEgressReload(t *testing.T) {
	e, up := vendor(t, "s3cret", time.Hour)
	t.Setenv("TG_TEST_EGRESS_SECRET", "s3cret")
	entry := func(name, scope string) string {
		return fmt.Sprintf(`
  - name: %s
    listen: 127.0.0.1:0
    upstream: %s
    insecure_http: true
    token: { url: %s, client_id: client, client_secret: "${TG_TEST_EGRESS_SECRET}", scopes: [%s] }
`, name, up.URL, e.URL, scope)
	}
	path := filepath.Join(t.TempDir(), "tokengate.yaml")
	write := func(y string) {
		if err := os.WriteFile(path, []byte("admin_listen: 127.0.0.1:0\negress:"+y), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(entry("a", "one") + entry("b", "one"))
	s := startAt(t, path)
	call := func(name string) {
		t.Helper()
		resp, err := http.Post("http://"+s.eg.addrs()[name]+"/x", "text/plain", strings.NewReader("hi"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d", name, resp.StatusCode)
		}
	}
	call("a")
	call("b")
	if e.Count() != 2 {
		t.Fatalf("token requests %d, want 2", e.Count())
	}
	addrA := s.eg.addrs()["a"]
	write(entry("a", "one") + entry("b", "two") + entry("c", "one"))
	if err := s.Reload(t.Context(), "test"); err != nil {
		t.Fatal(err)
	}
	call("a")
	call("b")
	call("c")
	if e.Count() != 4 {
		t.Errorf("token requests after reload %d, want 4 (b changed, c new, a kept)", e.Count())
	}
	if s.eg.addrs()["a"] != addrA {
		t.Error("the unchanged entry's listener was replaced")
	}
	reqs := e.Requests()
	if reqs[len(reqs)-1].Scope != "two" && reqs[len(reqs)-2].Scope != "two" {
		t.Error("the changed entry did not request its new scope")
	}
	write(entry("a", "one"))
	if err := s.Reload(t.Context(), "test"); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.eg.addrs()["b"]; ok {
		t.Error("a removed entry is still listed")
	}
}
