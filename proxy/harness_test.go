package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/verifier"
	"github.com/tokengate/tokengate/verifier/verifiertest"
)

const audience = "https://hooks.example.com"

// seen is one request as the upstream received it.
type seen struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   string
}

// upstream is a receiver that records what reached it.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
	// handle, when set, answers instead of the default 200 "ok".
	handle func(w http.ResponseWriter, r *http.Request)
}

func newUpstream() *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		u.mu.Lock()
		u.reqs = append(u.reqs, seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), string(body)})
		h := u.handle
		u.mu.Unlock()
		if err != nil {
			http.Error(w, "incomplete body: "+err.Error(), http.StatusBadRequest)
			return
		}
		if h != nil {
			h(w, r)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	return u
}

func (u *upstream) requests() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seen(nil), u.reqs...)
}

// env is a whole gate: identity provider, introspection endpoint, upstream
// and the handler under test behind a real HTTP server.
type env struct {
	t     *testing.T
	idp   *verifiertest.IdP
	intro *verifiertest.Introspector
	up    *upstream
	cfg   *config.Config
	cache *verifier.Cache
	front *httptest.Server
}

const baseRoutes = `
routes:
  - path_prefix: /hooks/aftership
    methods: [POST]
    require: { issuers: [idp], scopes: ["webhooks:write"] }
  - path: /hooks/deployteq
    require: { issuers: [idp], any_scopes: ["apps.webhook:execute", "*:webhooks/**"] }
  - path_prefix: /hooks/partner
    require: { issuers: [partner] }
  - path_prefix: /hooks/tenant
    require: { claims: { tenant: acme } }
  - path: /status
    public: true
  - path_prefix: /hooks/keep
    keep_authorization: true
    require: { issuers: [idp] }
`

// newEnv builds the gate; extra YAML is appended (it may override keys by
// being parsed after, so use distinct keys).
func newEnv(t *testing.T, extra string) *env {
	t.Helper()
	return newEnvOpts(t, extra, Options{})
}

// newEnvOpts is newEnv with handler options (an observer, a logger).
func newEnvOpts(t *testing.T, extra string, o Options) *env {
	t.Helper()
	e := &env{t: t, idp: verifiertest.New(), intro: verifiertest.NewIntrospector(), up: newUpstream()}
	t.Cleanup(func() { e.idp.Close(); e.intro.Close(); e.up.Close() })
	y := fmt.Sprintf(`
upstream: { url: %q, response_timeout: 1s, max_body_size: 1KiB }
retry_after: 7s
issuers:
  - name: idp
    issuer: %q
    audiences: [%q]
    jwks_refresh_cooldown: 1s
  - name: partner
    issuer: https://partner.example
    audiences: [%q]
    introspection: { url: %q, client_id: %q, client_secret: %q, timeout: 300ms }
headers:
  claims: { tenant: Tenant }
  strip: [x_custom_stripped]
`, e.up.URL, e.idp.Issuer(), audience, audience, e.intro.URL(), e.intro.ClientID, e.intro.ClientSecret) + baseRoutes + extra
	cfg, err := config.Parse([]byte(y), t.TempDir(), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.cfg = cfg
	jwt, err := verifier.NewJWT(verifier.JWTOptions{
		Name: "idp", Issuer: e.idp.Issuer(), Audiences: []string{audience},
		Algorithms: cfg.Issuers[0].Algorithms, ClockSkew: 30 * time.Second,
		RefreshCooldown: time.Second, Client: &http.Client{Timeout: time.Second}, KeepClaims: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	in, err := verifier.NewIntrospection(verifier.IntrospectionOptions{
		Name: "partner", URL: e.intro.URL(), ClientID: e.intro.ClientID, ClientSecret: e.intro.ClientSecret,
		Issuer: "https://partner.example", Audiences: []string{audience},
		Client: &http.Client{Timeout: 300 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.cache, err = verifier.NewCache(verifier.NewSet([]verifier.Issuer{{Name: "idp", Iss: e.idp.Issuer(), Verifier: jwt}}, &verifier.Issuer{Name: "partner", Iss: "https://partner.example", Verifier: in}),
		verifier.CacheOptions{MaxEntries: 1000, MaxTTL: time.Minute, NegativeTTL: 10 * time.Second, NegativeMaxEntries: 100})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(cfg, e.cache, o)
	if err != nil {
		t.Fatal(err)
	}
	e.front = httptest.NewServer(h)
	t.Cleanup(e.front.Close)
	return e
}

// token mints a valid token for the test IdP with scopes.
func (e *env) token(scopes ...string) string {
	return e.idp.Mint(e.idp.Claims(audience, scopes...))
}

// do sends a request through the gate. headers is a list of name, value.
func (e *env) do(method, path, body string, headers ...string) *http.Response {
	e.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, e.front.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := e.front.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp
}

func bodyOf(r *http.Response) string {
	b, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(b))
	return string(b)
}
