package proxy

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokengate/tokengate/verifier/verifiertest"
)

func with(c map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// denyCase is one request that must be refused before the upstream.
type denyCase struct {
	name      string
	path      string
	header    func(e *env) []string // request headers
	status    int
	challenge string // substring of WWW-Authenticate; "-" means none sent
}

func (c denyCase) run(t *testing.T, e *env) {
	t.Helper()
	before := len(e.up.requests())
	path := c.path
	if path == "" {
		path = "/hooks/aftership/orders"
	}
	hdrs := c.header(e)
	resp := e.do(http.MethodPost, path, `{"event":"x"}`, hdrs...)
	if resp.StatusCode != c.status {
		t.Fatalf("status = %d, want %d (body %s)", resp.StatusCode, c.status, bodyOf(resp))
	}
	got := resp.Header.Get("WWW-Authenticate")
	switch {
	case c.challenge == "-" && got != "":
		t.Errorf("WWW-Authenticate = %q, want none", got)
	case c.challenge != "-" && !strings.Contains(got, c.challenge):
		t.Errorf("WWW-Authenticate = %q, want it to contain %q", got, c.challenge)
	}
	if n := len(e.up.requests()) - before; n != 0 {
		t.Fatalf("upstream received %d request(s) for a denied request", n)
	}
	var body struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(bodyOf(resp)), &body); err != nil || body.Error == "" {
		t.Errorf("body %q is not an RFC 6750 JSON error", bodyOf(resp))
	}
	for _, h := range hdrs {
		if len(h) > 20 && strings.Contains(bodyOf(resp)+got, h) {
			t.Errorf("the answer echoes the credential")
		}
	}
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

func TestEndToEndDenials(t *testing.T) {
	e := newEnv(t, "")
	now := time.Now()
	invalid := `error="invalid_token"`
	pubPEM := func(e *env) []byte {
		der, _ := x509.MarshalPKIXPublicKey(e.idp.Signer().Private.Public())
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	cases := []denyCase{
		{name: "no Authorization header", header: func(*env) []string { return nil }, status: 401, challenge: `Bearer realm="tokengate"`},
		{name: "wrong scheme (Basic)", header: func(*env) []string { return []string{"Authorization", "Basic YWxpY2U6cGFzcw=="} }, status: 401, challenge: `Bearer realm="tokengate"`},
		{name: "empty token", header: func(*env) []string { return []string{"Authorization", "Bearer "} }, status: 400, challenge: `error="invalid_request"`},
		{name: "garbage token", header: func(*env) []string { return bearer("garbage") }, status: 401, challenge: invalid},
		{name: "expired", header: func(e *env) []string {
			return bearer(e.idp.Mint(with(e.idp.Claims(audience, "webhooks:write"), "exp", now.Add(-time.Minute).Unix())))
		}, status: 401, challenge: `error_description="token expired"`},
		{name: "nbf in the future", header: func(e *env) []string {
			return bearer(e.idp.Mint(with(e.idp.Claims(audience, "webhooks:write"), "nbf", now.Add(time.Hour).Unix())))
		}, status: 401, challenge: invalid},
		{name: "wrong iss", header: func(e *env) []string {
			return bearer(e.idp.Mint(with(e.idp.Claims(audience, "webhooks:write"), "iss", "https://evil.example")))
		}, status: 401, challenge: invalid},
		{name: "wrong aud", header: func(e *env) []string { return bearer(e.idp.Mint(e.idp.Claims("https://other", "webhooks:write"))) }, status: 401, challenge: `error_description="audience not accepted"`},
		{name: "alg none", header: func(e *env) []string {
			return bearer(verifiertest.Unsigned(map[string]any{"alg": "none"}, e.idp.Claims(audience, "webhooks:write"), ""))
		}, status: 401, challenge: invalid},
		{name: "HS256 signed with the RSA public key", header: func(e *env) []string {
			return bearer(verifiertest.SignHMAC(jose.HS256, pubPEM(e), e.idp.Signer().ID, e.idp.Claims(audience, "webhooks:write")))
		}, status: 401, challenge: invalid},
		{name: "unknown kid", header: func(e *env) []string {
			return bearer(verifiertest.Sign(verifiertest.NewKeyFast(), e.idp.Claims(audience, "webhooks:write"), nil))
		}, status: 401, challenge: invalid},
		{name: "bad signature", header: func(e *env) []string {
			tok := e.token("webhooks:write")
			return bearer(tok[:len(tok)-4] + "AAAA")
		}, status: 401, challenge: invalid},
		{name: "missing scope", header: func(e *env) []string { return bearer(e.token("read")) }, status: 403, challenge: `error="insufficient_scope"`},
		{name: "missing scope names the scope", header: func(e *env) []string { return bearer(e.token("read")) }, status: 403, challenge: `scope="webhooks:write"`},
		{name: "two Authorization headers", header: func(e *env) []string {
			return append(bearer(e.token("webhooks:write")), bearer(e.token("webhooks:write"))...)
		}, status: 400, challenge: `error="invalid_request"`},
		{name: "Bearer and a tab", header: func(e *env) []string { return []string{"Authorization", "Bearer\t" + e.token("webhooks:write")} }, status: 400, challenge: `error="invalid_request"`},
		{name: "non-ASCII token", header: func(*env) []string { return []string{"Authorization", "Bearer t\xc3\xa9st"} }, status: 400, challenge: `error="invalid_request"`},
		{name: "token in the query string", path: "/hooks/aftership/x?access_token=abc", header: func(e *env) []string { return bearer(e.token("webhooks:write")) }, status: 400, challenge: `error="invalid_request"`},
		{name: "token of another issuer's route", path: "/hooks/partner/x", header: func(e *env) []string { return bearer(e.token("webhooks:write")) }, status: 401, challenge: `error_description="token not accepted on this route"`},
		{name: "claim mismatch", path: "/hooks/tenant/x", header: func(e *env) []string {
			return bearer(e.idp.Mint(with(e.idp.Claims(audience), "tenant", "evilcorp")))
		}, status: 403, challenge: `error="insufficient_scope"`},
		{name: "no route", path: "/admin", header: func(e *env) []string { return bearer(e.token("webhooks:write")) }, status: 404, challenge: "-"},
		{name: "traversal out of a route", path: "/hooks/aftership/../../admin", header: func(e *env) []string { return bearer(e.token("webhooks:write")) }, status: 404, challenge: "-"},
		{name: "encoded traversal", path: "/hooks/aftership/%2e%2e/%2e%2e/admin", header: func(e *env) []string { return bearer(e.token("webhooks:write")) }, status: 404, challenge: "-"},
		{name: "encoded slash", path: "/hooks%2Faftership/x", header: func(e *env) []string { return bearer(e.token("webhooks:write")) }, status: 400, challenge: `error="invalid_request"`},
		{name: "prefix without segment boundary", path: "/hooks/aftershipX", header: func(e *env) []string { return bearer(e.token("webhooks:write")) }, status: 404, challenge: "-"},
		{name: "inactive opaque token", path: "/hooks/partner/x", header: func(*env) []string { return bearer("opaque-unknown") }, status: 401, challenge: `error_description="token is not active"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, e) })
	}
}

func TestValidTokenIsForwardedWithIdentityAndWithoutAuthorization(t *testing.T) {
	e := newEnv(t, "")
	tok := e.token("webhooks:write", "other")
	resp := e.do(http.MethodPost, "/hooks/aftership/orders?id=7", `{"tracking":"123"}`, append(bearer(tok),
		"X-Auth-Subject", "admin", "x-auth-scope", "everything", "X_Auth_Client_Id", "root",
		"X-Forwarded-For", "6.6.6.6", "X-Http-Method-Override", "DELETE", "Connection", "X-Auth-Subject")...)
	if resp.StatusCode != 200 || bodyOf(resp) != "ok" {
		t.Fatalf("status %d body %q", resp.StatusCode, bodyOf(resp))
	}
	reqs := e.up.requests()
	if len(reqs) != 1 {
		t.Fatalf("upstream got %d requests", len(reqs))
	}
	r := reqs[0]
	checks := map[string]bool{
		"body forwarded":                 r.Body == `{"tracking":"123"}`,
		"path forwarded":                 r.Path == "/hooks/aftership/orders" && r.RawQuery == "id=7",
		"Authorization dropped":          r.Header.Get("Authorization") == "",
		"subject from token":             r.Header.Get("X-Auth-Subject") == "aftership" && len(r.Header.Values("X-Auth-Subject")) == 1,
		"client id from token":           r.Header.Get("X-Auth-Client-Id") == "aftership",
		"scope from token":               r.Header.Get("X-Auth-Scope") == "webhooks:write other",
		"issuer from token":              r.Header.Get("X-Auth-Issuer") == e.idp.Issuer(),
		"underscore spoof dropped":       r.Header.Get("X_auth_client_id") == "" && len(r.Header.Values("X-Auth-Client-Id")) == 1,
		"client X-Forwarded-For dropped": r.Header.Get("X-Forwarded-For") == "127.0.0.1",
		"X-Forwarded-Proto set":          r.Header.Get("X-Forwarded-Proto") == "http",
		"X-Forwarded-Host set":           r.Header.Get("X-Forwarded-Host") == strings.TrimPrefix(e.front.URL, "http://"),
		"method override dropped":        r.Header.Get("X-Http-Method-Override") == "",
	}
	for name, ok := range checks {
		if !ok {
			t.Errorf("%s: upstream saw %+v", name, r)
		}
	}
}

func TestSpoofedIdentityNeverReachesUpstreamOnPublicRoute(t *testing.T) {
	e := newEnv(t, "")
	resp := e.do(http.MethodGet, "/status", "", "X-Auth-Subject", "admin", "Authorization", "Bearer whatever")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	r := e.up.requests()[0]
	if r.Header.Get("X-Auth-Subject") != "" || r.Header.Get("Authorization") != "" {
		t.Fatalf("public route leaked client identity headers: %v", r.Header)
	}
}

func TestKeepAuthorizationPerRoute(t *testing.T) {
	e := newEnv(t, "")
	tok := e.token()
	if resp := e.do(http.MethodPost, "/hooks/keep", "", bearer(tok)...); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := e.up.requests()[0].Header.Get("Authorization"); got != "Bearer "+tok {
		t.Fatalf("keep_authorization route: Authorization = %q", got)
	}
}

func TestSchemeIsCaseInsensitiveAndClaimHeaders(t *testing.T) {
	e := newEnv(t, "")
	tok := e.idp.Mint(with(e.idp.Claims(audience), "tenant", "acme"))
	for _, scheme := range []string{"bearer", "BEARER", "Bearer"} {
		resp := e.do(http.MethodPost, "/hooks/tenant/a", "", "Authorization", scheme+"  "+tok)
		if resp.StatusCode != 200 {
			t.Fatalf("scheme %q: status %d %s", scheme, resp.StatusCode, bodyOf(resp))
		}
	}
	if got := e.up.requests()[0].Header.Get("X-Auth-Tenant"); got != "acme" {
		t.Fatalf("claim header = %q", got)
	}
}

func TestAnyOfScopesFromEverySeed(t *testing.T) {
	e := newEnv(t, "")
	for _, scope := range []string{"apps.webhook:execute", "*:webhooks/**"} {
		if resp := e.do(http.MethodPost, "/hooks/deployteq", "{}", bearer(e.token(scope))...); resp.StatusCode != 200 {
			t.Fatalf("scope %q: status %d", scope, resp.StatusCode)
		}
	}
	// Scopes are plain strings, never patterns.
	if resp := e.do(http.MethodPost, "/hooks/deployteq", "{}", bearer(e.token("x:webhooks/a"))...); resp.StatusCode != 403 {
		t.Fatalf("pattern-like scope matched: %d", resp.StatusCode)
	}
}

func TestIntrospectionThroughTheGate(t *testing.T) {
	e := newEnv(t, "")
	e.intro.Add("opaque-1", verifiertest.ActiveClaims("webhooks:write", time.Hour))
	for range 3 {
		if resp := e.do(http.MethodPost, "/hooks/partner/x", "{}", bearer("opaque-1")...); resp.StatusCode != 200 {
			t.Fatalf("status %d %s", resp.StatusCode, bodyOf(resp))
		}
	}
	if e.intro.Calls() != 1 {
		t.Fatalf("introspection calls = %d, want 1 (cached)", e.intro.Calls())
	}
}

func TestIdentityProviderDownIs503WithRetryAfter(t *testing.T) {
	e := newEnv(t, "")
	e.intro.SetStatus(500)
	resp := e.do(http.MethodPost, "/hooks/partner/x", "{}", bearer("opaque-2")...)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "7" {
		t.Fatalf("introspection 500: status %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	e.intro.SetStatus(0)
	e.intro.SetDelay(time.Second)
	if resp := e.do(http.MethodPost, "/hooks/partner/x", "{}", bearer("opaque-3")...); resp.StatusCode != 503 {
		t.Fatalf("introspection timeout: status %d", resp.StatusCode)
	}
	e.idp.SetDown(true)
	if resp := e.do(http.MethodPost, "/hooks/aftership", "{}", bearer(e.token("webhooks:write"))...); resp.StatusCode != 503 {
		t.Fatalf("JWKS down: status %d %s", resp.StatusCode, bodyOf(resp))
	}
	if n := len(e.up.requests()); n != 0 {
		t.Fatalf("upstream got %d requests", n)
	}
}

func TestBurstOfOneNewTokenMakesOneIntrospectionCall(t *testing.T) {
	e := newEnv(t, "")
	e.intro.Add("burst", verifiertest.ActiveClaims("webhooks:write", time.Hour))
	e.intro.SetDelay(100 * time.Millisecond)
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for range 100 {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, e.front.URL+"/hooks/partner/b", strings.NewReader("{}"))
			req.Header.Set("Authorization", "Bearer burst")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			codes[resp.StatusCode]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if codes[200] != 100 {
		t.Fatalf("statuses = %v", codes)
	}
	if e.intro.Calls() != 1 {
		t.Fatalf("100 concurrent requests with one new token: %d introspection calls, want 1", e.intro.Calls())
	}
}

func TestUpstreamFailures(t *testing.T) {
	t.Run("body too large by Content-Length", func(t *testing.T) {
		e := newEnv(t, "")
		resp := e.do(http.MethodPost, "/hooks/aftership", strings.Repeat("x", 2048), bearer(e.token("webhooks:write"))...)
		if resp.StatusCode != 413 || len(e.up.requests()) != 0 {
			t.Fatalf("status %d, upstream got %d", resp.StatusCode, len(e.up.requests()))
		}
	})
	t.Run("body too large while streaming", func(t *testing.T) {
		e := newEnv(t, "")
		req, _ := http.NewRequest(http.MethodPost, e.front.URL+"/hooks/aftership", struct{ *strings.Reader }{strings.NewReader(strings.Repeat("x", 4096))})
		req.Header.Set("Authorization", "Bearer "+e.token("webhooks:write"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Fatalf("status %d, want 413", resp.StatusCode)
		}
	})
	t.Run("upstream refuses connections", func(t *testing.T) {
		e := newEnv(t, "")
		e.up.Close()
		if resp := e.do(http.MethodPost, "/hooks/aftership", "{}", bearer(e.token("webhooks:write"))...); resp.StatusCode != 502 {
			t.Fatalf("status %d, want 502", resp.StatusCode)
		}
	})
	t.Run("upstream hangs", func(t *testing.T) {
		e := newEnv(t, "")
		release := make(chan struct{})
		defer close(release)
		e.up.handle = func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		start := time.Now()
		resp := e.do(http.MethodPost, "/hooks/aftership", "{}", bearer(e.token("webhooks:write"))...)
		if resp.StatusCode != 504 {
			t.Fatalf("status %d, want 504", resp.StatusCode)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("504 took %v; the response timeout is 1s", d)
		}
	})
}

func TestJWTOfAnUnknownIssuerIsNeverShownToIntrospection(t *testing.T) {
	e := newEnv(t, "")
	tok := e.idp.Mint(with(e.idp.Claims(audience, "webhooks:write"), "iss", "https://unrelated.example"))
	resp := e.do(http.MethodPost, "/hooks/partner/x", "{}", bearer(tok)...)
	if resp.StatusCode != 401 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if e.intro.Calls() != 0 {
		t.Fatalf("a foreign JWT was sent to the introspection endpoint (%d calls)", e.intro.Calls())
	}
}
