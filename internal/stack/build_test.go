package stack

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	st, err := NewBuilder(Options{}).Build(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(st.Handler())
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
	st, err := NewBuilder(Options{}).Build(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(st.Handler())
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
