package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/config"
)

// TestQuickstartConfigWorksAsTheREADMESays runs the README's curl lines
// against examples/quickstart.yaml (its upstream pointed at a test receiver).
func TestQuickstartConfigWorksAsTheREADMESays(t *testing.T) {
	cfg, err := config.Load("../../examples/quickstart.yaml", config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, r.Header.Get("X-Auth-Client-Id")+" "+string(b))
	}))
	defer recv.Close()
	cfg.Upstream.URL = recv.URL
	st, err := (&builder{log: zap.NewNop()}).build(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(st.handler)
	defer front.Close()

	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"aftership"}, "client_secret": {"quickstart-secret-change-me"}}
	resp, err := http.PostForm(front.URL+"/oauth2/token", form)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if resp.StatusCode != 200 || tok.AccessToken == "" {
		t.Fatalf("token: %d", resp.StatusCode)
	}
	send := func(auth string) int {
		req, _ := http.NewRequest(http.MethodPost, front.URL+"/hooks/aftership", strings.NewReader(`{"tracking_number":"1Z999AA10123456784"}`))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := send("Bearer " + tok.AccessToken); code != 200 {
		t.Fatalf("webhook with token: %d", code)
	}
	if code := send(""); code != 401 {
		t.Fatalf("webhook without token: %d", code)
	}
	if len(got) != 1 || got[0] != `aftership {"tracking_number":"1Z999AA10123456784"}` {
		t.Fatalf("receiver got %q", got)
	}
}

func TestClientSecretFromAFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("from-a-mounted-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	y := "upstream: http://127.0.0.1:9\ntoken_endpoint:\n  issuer: https://h\n  clients: [{ client_id: c, client_secret_file: secret, scopes: [s] }]\nroutes: [{ path: /a }]\n"
	cfg, err := config.Parse([]byte(y), dir, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := (&builder{log: zap.NewNop()}).build(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(st.handler)
	defer front.Close()
	for secret, want := range map[string]int{"from-a-mounted-secret": 200, "wrong": 401} {
		resp, err := http.PostForm(front.URL+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"c"}, "client_secret": {secret}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("secret %q: %d, want %d", secret, resp.StatusCode, want)
		}
	}
}

// TestQuickstartEgressCurl runs the quickstart as the README's first
// command does (examples/quickstart.yaml, its ports moved to free ones)
// and sends the README's egress curl: no token in hand, the webhook
// reaches the demo receiver through the egress and the gate.
func TestQuickstartEgressCurl(t *testing.T) {
	raw, err := os.ReadFile("../../examples/quickstart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pub, eg, recv := freeAddr(t), freeAddr(t), freeAddr(t)
	y := strings.NewReplacer(`":8080"`, `"`+pub+`"`, "localhost:8080", pub, "127.0.0.1:8081", eg,
		"127.0.0.1:9090", "127.0.0.1:0", "127.0.0.1:9000", recv).Replace(string(raw))
	if y == string(raw) || !strings.Contains(y, "egress:") {
		t.Fatal("the quickstart config has no egress entry to test")
	}
	dir := t.TempDir()
	secret, err := os.ReadFile("../../examples/quickstart-client-secret")
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"quickstart.yaml": []byte(y), "quickstart-client-secret": secret} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &safeBuffer{}
	done := make(chan error, 1)
	go func() { done <- quickstart(ctx, filepath.Join(dir, "quickstart.yaml"), recv, out, io.Discard) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	var resp *http.Response
	for range 100 { // until the listeners are up
		resp, err = http.Post("http://"+eg+"/hooks/aftership", "application/x-www-form-urlencoded", strings.NewReader(`{"tracking_number":"1Z999AA10123456784"}`))
		if err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"received":true`) {
		t.Fatalf("egress curl: %d %s", resp.StatusCode, b)
	}
	for _, want := range []string{">>> webhook received: POST /hooks/aftership", "X-Auth-Client-Id: aftership", `body: {"tracking_number":"1Z999AA10123456784"}`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo receiver output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestQuickstartSaysWhatToDoWhenItsFilesAreMissing(t *testing.T) {
	dir := t.TempDir()
	noCert := filepath.Join(dir, "https.yaml")
	y := "listen: \"127.0.0.1:0\"\nupstream: http://127.0.0.1:9000\ntls: { cert_file: certs/tls.crt, key_file: certs/tls.key }\nroutes:\n  - { path: /a, public: true }\n"
	if err := os.WriteFile(noCert, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ cfg, want string }{
		{filepath.Join(dir, "examples/quickstart.yaml"), "run the quickstart from the repository root"},
		{noCert, "make one with the openssl command at the top of " + noCert},
	} {
		err := quickstart(t.Context(), c.cfg, "127.0.0.1:0", io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("quickstart --config %s: %v, want %q", c.cfg, err, c.want)
		}
	}
}
