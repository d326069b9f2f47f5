package stack

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/tokengate/tokengate/config"
)

const seedSecret = "Qg+KgOX/Owv%ffUb" // characters that need form-encoding in Basic

// gate is tokengate built from a config, with the embedded token endpoint,
// in front of a recording receiver.
type gate struct {
	url  string
	mu   sync.Mutex
	seen []http.Header
	logs *bytes.Buffer
}

func (g *gate) received() []http.Header {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]http.Header(nil), g.seen...)
}

func startGate(t *testing.T, tokenTTL string) *gate {
	t.Helper()
	g := &gate{logs: &bytes.Buffer{}}
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		g.mu.Lock()
		g.seen = append(g.seen, r.Header.Clone())
		g.mu.Unlock()
		_, _ = io.WriteString(w, "received")
	}))
	t.Cleanup(recv.Close)
	front := httptest.NewUnstartedServer(nil)
	g.url = "http://" + front.Listener.Addr().String()
	hash, _ := bcrypt.GenerateFromPassword([]byte(seedSecret), bcrypt.MinCost)
	y := fmt.Sprintf(`
upstream: %s
token_endpoint:
  issuer: %s
  token_ttl: %s
  clients:
    - client_id: aftership
      client_secret_hash: %q
      scopes: ["webhooks:write", "apps.webhook:execute", "*:webhooks/**"]
      default_scopes: ["webhooks:write"]
routes:
  - path_prefix: /hooks
    methods: [POST]
    require: { issuers: [local], any_scopes: ["webhooks:write", "apps.webhook:execute", "*:webhooks/**"] }
`, recv.URL, g.url, tokenTTL, hash)
	cfg, err := config.Parse([]byte(y), t.TempDir(), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(lockedWriter{&mu, g.logs}), zapcore.DebugLevel)
	st, err := NewBuilder(Options{Logger: zap.New(core)}).Build(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	front.Config.Handler = st.Handler()
	front.Start()
	t.Cleanup(front.Close)
	return g
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (g *gate) tokenRequest(t *testing.T, contentType string, body io.Reader, basicID, basicSecret string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, g.url+"/oauth2/token", body)
	req.Header.Set("Content-Type", contentType)
	if basicID != "" {
		// As the seeds' curl -u and Postman do: plain id:secret, base64.
		req.SetBasicAuth(basicID, basicSecret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	if resp.StatusCode != 200 {
		t.Fatalf("token request: %d %v", resp.StatusCode, m)
	}
	return m
}

func (g *gate) webhook(t *testing.T, authorization string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, g.url+"/hooks/events", strings.NewReader(`{"event":"tracking_update"}`))
	req.Header.Set("Content-Type", "application/json")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestEverySeedShapeGetsATokenThatPassesTheGate sends each vendor's token
// request exactly as its document writes it, then a webhook with the token.
func TestEverySeedShapeGetsATokenThatPassesTheGate(t *testing.T) {
	g := startGate(t, "1h")
	// seedSecret has characters RFC 6749 §2.3.1 says to form-encode in
	// Basic. Deployteq's "curl -u" sends it raw, Akamai's example encoded:
	// both must work.
	mp := func(kv ...string) (string, io.Reader) {
		var b bytes.Buffer
		w := multipart.NewWriter(&b)
		for i := 0; i+1 < len(kv); i += 2 {
			_ = w.WriteField(kv[i], kv[i+1])
		}
		_ = w.Close()
		return w.FormDataContentType(), &b
	}
	cases := []struct {
		name, scope string
		get         func() map[string]any
	}{
		{"AfterShip: client_id and client_secret in a form body", "webhooks:write", func() map[string]any {
			body := url.Values{"grant_type": {"client_credentials"}, "client_id": {"aftership"}, "client_secret": {seedSecret}}
			return g.tokenRequest(t, "application/x-www-form-urlencoded", strings.NewReader(body.Encode()), "", "")
		}},
		{"Deployteq: curl -u id:secret -d grant_type&scope", "apps.webhook:execute", func() map[string]any {
			return g.tokenRequest(t, "application/x-www-form-urlencoded", strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "scope": {"apps.webhook:execute"}}.Encode()), "aftership", seedSecret)
		}},
		{"MyParcel: JSON body with scope *", "webhooks:write apps.webhook:execute *:webhooks/**", func() map[string]any {
			b, _ := json.Marshal(map[string]string{"grant_type": "client_credentials", "client_id": "aftership", "client_secret": seedSecret, "scope": "*"})
			return g.tokenRequest(t, "application/json", bytes.NewReader(b), "", "")
		}},
		{"Akamai: Basic header + curl -F multipart", "*:webhooks/**", func() map[string]any {
			ct, body := mp("grant_type", "client_credentials", "scope", "*:webhooks/**")
			return g.tokenRequest(t, ct, body, "aftership", url.QueryEscape(seedSecret))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(g.received())
			m := c.get()
			if m["scope"] != c.scope || m["token_type"] != "Bearer" {
				t.Fatalf("token answer = %v", m)
			}
			tok := m["access_token"].(string)
			// Deployteq's own answer says "bearer": senders may echo it.
			for _, scheme := range []string{"Bearer", "bearer"} {
				if code := g.webhook(t, scheme+" "+tok); code != 200 {
					t.Fatalf("%s webhook: status %d", scheme, code)
				}
			}
			got := g.received()
			if len(got) != before+2 {
				t.Fatalf("receiver got %d webhooks, want 2", len(got)-before)
			}
			last := got[len(got)-1]
			if last.Get("X-Auth-Client-Id") != "aftership" || last.Get("X-Auth-Scope") != c.scope || last.Get("Authorization") != "" {
				t.Fatalf("receiver saw %v", last)
			}
		})
	}
	if code := g.webhook(t, ""); code != 401 {
		t.Fatalf("webhook without a token: %d", code)
	}
}

// TestGoOAuth2ClientCredentialsDeliversWebhooks uses the client a Go sender
// really uses, with both auth styles, across a token refresh.
func TestGoOAuth2ClientCredentialsDeliversWebhooks(t *testing.T) {
	// expires_in 11s: x/oauth2 treats a token as expired 10s early, so after
	// a little over a second it must fetch a new one.
	g := startGate(t, "11s")
	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
		t.Run(fmt.Sprint(style), func(t *testing.T) {
			cc := clientcredentials.Config{
				ClientID: "aftership", ClientSecret: seedSecret, TokenURL: g.url + "/oauth2/token",
				Scopes: []string{"webhooks:write"}, AuthStyle: style,
			}
			client := cc.Client(context.Background())
			send := func() {
				resp, err := client.Post(g.url+"/hooks/x", "application/json", strings.NewReader(`{}`))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("status %d", resp.StatusCode)
				}
			}
			tok1, err := cc.Token(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			send()
			send()
			time.Sleep(1100 * time.Millisecond)
			send()
			tok2, err := cc.Token(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if tok1.AccessToken == tok2.AccessToken {
				t.Fatal("no token refresh happened")
			}
		})
	}
}

func TestFailedLoginsLogNoSecretAndNoToken(t *testing.T) {
	g := startGate(t, "1h")
	body := url.Values{"grant_type": {"client_credentials"}, "client_id": {"aftership"}, "client_secret": {"wrong-secret-XYZ"}}
	req, _ := http.NewRequest(http.MethodPost, g.url+"/oauth2/token", strings.NewReader(body.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("wrong secret: %d", resp.StatusCode)
	}
	req, _ = http.NewRequest(http.MethodPost, g.url+"/oauth2/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("mallory", "mallory-secret-ABC")
	resp, _ = http.DefaultClient.Do(req)
	resp.Body.Close()
	good := g.tokenRequest(t, "application/x-www-form-urlencoded",
		strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "client_id": {"aftership"}, "client_secret": {seedSecret}}.Encode()), "", "")
	tok := good["access_token"].(string)
	g.webhook(t, "Bearer "+tok)
	g.webhook(t, "Bearer "+tok[:len(tok)-3]+"abc")
	logs := g.logs.String()
	for _, secret := range []string{"wrong-secret-XYZ", "mallory-secret-ABC", seedSecret, tok, strings.Split(tok, ".")[2], base64.StdEncoding.EncodeToString([]byte("mallory:mallory-secret-ABC"))} {
		if strings.Contains(logs, secret) {
			t.Fatalf("logs contain a secret or token %q:\n%s", secret, logs)
		}
	}
	if strings.Contains(logs, `"mallory"`) {
		t.Errorf("an unknown client id was logged as sent (only its hash may be):\n%s", logs)
	}
	for _, want := range []string{`"client_id":"aftership"`, `"unknown_client_id_sha256":`, `client authentication failed`, `"token_id":`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
}

func TestTokensOfAClientRemovedOnReloadStopAtOnce(t *testing.T) {
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	defer recv.Close()
	hash, _ := bcrypt.GenerateFromPassword([]byte(seedSecret), bcrypt.MinCost)
	yaml := func(clients ...string) *config.Config {
		var cl strings.Builder
		for _, c := range clients {
			fmt.Fprintf(&cl, "    - { client_id: %s, client_secret_hash: %q, scopes: [webhooks:write] }\n", c, hash)
		}
		cfg, err := config.Parse([]byte(fmt.Sprintf(`
upstream: %s
token_endpoint:
  issuer: https://hooks.example.com
  clients:
%sroutes:
  - { path_prefix: /hooks, require: { scopes: [webhooks:write] } }
`, recv.URL, cl.String())), t.TempDir(), config.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	b := NewBuilder(Options{})
	before, err := b.Build(yaml("aftership", "deployteq"), nil)
	if err != nil {
		t.Fatal(err)
	}
	call := func(st *Stack, path, auth, body string) *httptest.ResponseRecorder {
		// A real server: the token endpoint reads bodies only under a deadline.
		srv := httptest.NewServer(st.Handler())
		defer srv.Close()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		w := httptest.NewRecorder()
		w.Code = resp.StatusCode
		_, _ = io.Copy(w.Body, resp.Body)
		return w
	}
	w := call(before, "/oauth2/token", "", url.Values{"grant_type": {"client_credentials"}, "client_id": {"deployteq"}, "client_secret": {seedSecret}}.Encode())
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &tr); err != nil || tr.AccessToken == "" {
		t.Fatalf("token: %d %s", w.Code, w.Body)
	}
	if w := call(before, "/hooks/x", "Bearer "+tr.AccessToken, "{}"); w.Code != 200 {
		t.Fatalf("before the reload: %d %s", w.Code, w.Body)
	}
	after, err := b.Build(yaml("aftership"), before)
	if err != nil {
		t.Fatal(err)
	}
	if after.cache != before.cache {
		t.Fatal("a reload that only removes a client should keep the cache (the check must hold even on a cache hit)")
	}
	if w := call(after, "/hooks/x", "Bearer "+tr.AccessToken, "{}"); w.Code != 401 || !strings.Contains(w.Body.String(), "client no longer registered") {
		t.Fatalf("after the client was removed: %d %s", w.Code, w.Body)
	}
}
