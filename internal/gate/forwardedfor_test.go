package gate

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/crypto/bcrypt"
)

// TestForwardedForWithPortsResolvedEverywhere: behind a trusted proxy
// that writes X-Forwarded-For as ip:port or [ipv6]:port (Azure
// Application Gateway), the running gate resolves each client on the
// public listener's Token URL (its failed-login bucket), on a remote_ip
// route and in the access log, instead of counting every client as the
// proxy: one guesser spending its failures does not lock out another
// client. An entry that is not an address is refused 400 on both.
func TestForwardedForWithPortsResolvedEverywhere(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("right-secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	recv := newSignedReceiver(t)
	y := fmt.Sprintf(`listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream: %s
trusted_proxies: [127.0.0.0/8]
token_endpoint:
  issuer: http://localhost:8080
  rate_limit: { per_client: 1000, per_client_burst: 1000, per_ip: 1000, per_ip_burst: 1000, per_ip_failures: 0.001, per_ip_failure_burst: 2 }
  clients:
    - { client_id: aftership, client_secret_hash: %q, scopes: [w] }
routes:
  - name: by-ip
    path: /hooks/by-ip
    public: true
    rate_limit: { key: remote_ip, rate: 1/h, burst: 1 }
`, recv.URL, hash)
	path := filepath.Join(t.TempDir(), "tokengate.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	ctx, cancel := context.WithCancel(context.Background())
	g, err := startWith(ctx, path, Options{Logger: zap.New(core)})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = g.Shutdown(context.Background()) })
	gate := "http://" + g.Addr()

	type result struct {
		status       int
		code, detail string
	}
	send := func(req *http.Request, xff string) result {
		t.Helper()
		req.Header.Set("X-Forwarded-For", xff)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return result{resp.StatusCode, body.Error, body.Description}
	}
	login := func(xff, secret string) result {
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"aftership"}, "client_secret": {secret}}
		req, _ := http.NewRequest(http.MethodPost, gate+"/oauth2/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return send(req, xff)
	}
	hook := func(xff string) result {
		req, _ := http.NewRequest(http.MethodGet, gate+"/hooks/by-ip", nil)
		return send(req, xff)
	}

	// Token URL: the guesser spends its own failures, nobody else's.
	for i := range 2 {
		if r := login("203.0.113.7:5555", "wrong"); r.status != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d %s", i+1, r.status, r.code)
		}
	}
	if r := login("203.0.113.7:6666", "wrong"); r.status != http.StatusTooManyRequests {
		t.Fatalf("the guesser past its failures, from another port: %d, want 429", r.status)
	}
	for _, xff := range []string{"203.0.113.8:5555", "[2001:db8::1]:1"} {
		if r := login(xff, "right-secret"); r.status != http.StatusOK {
			t.Fatalf("another client (%s) after the guesser spent its failures: %d %s (every client counted as the proxy)", xff, r.status, r.code)
		}
	}
	// A remote_ip route: one bucket per client.
	if r := hook("198.51.100.1:5555"); r.status != http.StatusOK {
		t.Fatalf("route, client 1: %d %s", r.status, r.code)
	}
	if r := hook("198.51.100.2:5555"); r.status != http.StatusOK {
		t.Fatalf("route, client 2 after client 1: %d %s (one bucket for every client)", r.status, r.code)
	}
	// Not an address: refused on both, never counted as the proxy.
	const desc = "X-Forwarded-For from a trusted proxy is not an address"
	if r := login("unknown", "right-secret"); r.status != http.StatusBadRequest || r.code != "invalid_request" || r.detail != desc {
		t.Fatalf("Token URL, X-Forwarded-For %q: %+v, want 400 invalid_request %q", "unknown", r, desc)
	}
	if r := hook("203.0.113.9:99999"); r.status != http.StatusBadRequest || r.code != "invalid_request" || r.detail != desc {
		t.Fatalf("route, X-Forwarded-For %q: %+v, want 400 invalid_request %q", "203.0.113.9:99999", r, desc)
	}
	if n := len(recv.received()); n != 2 {
		t.Fatalf("the receiver got %d requests, want the 2 accepted", n)
	}
	// The access log names each client by its address, without the port.
	var clients []string
	for _, e := range logs.FilterMessage("request").All() {
		if e.ContextMap()["path"] == "/hooks/by-ip" {
			clients = append(clients, fmt.Sprint(e.ContextMap()["client"]))
		}
	}
	if strings.Join(clients, " ") != "198.51.100.1 198.51.100.2 " {
		t.Fatalf("access log clients %q, want 198.51.100.1, 198.51.100.2 and none for the refused request", clients)
	}
}
