package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/verifier"
	"github.com/tokengate/tokengate/verifier/verifiertest"
)

// rawRequest writes a raw HTTP/1.1 request to the gate and returns the
// connection and a reader on it.
func rawRequest(t *testing.T, e *env, req string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.front.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	return conn, bufio.NewReader(conn)
}

func TestProtocolUpgradesAreRefusedUnlessTheRouteOptsIn(t *testing.T) {
	e := newEnv(t, `
  - path: /ws
    websocket: true
    require: { issuers: [idp] }
`)
	tok := e.token("webhooks:write")
	for _, c := range []struct {
		name, path string
		headers    []string
	}{
		{"websocket on a route without websocket: true", "/hooks/aftership", []string{"Connection", "Upgrade", "Upgrade", "websocket"}},
		{"h2c", "/hooks/aftership", []string{"Connection", "Upgrade, HTTP2-Settings", "Upgrade", "h2c", "HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"}},
		{"h2c on a websocket route", "/ws", []string{"Connection", "Upgrade, HTTP2-Settings", "Upgrade", "h2c", "HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"}},
		{"HTTP2-Settings alone", "/ws", []string{"HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"}},
		{"an invented protocol on a websocket route", "/ws", []string{"Connection", "Upgrade", "Upgrade", "tls/1.3"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := len(e.up.requests())
			resp := e.do(http.MethodPost, c.path, "", append([]string{"Authorization", "Bearer " + tok}, c.headers...)...)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(bodyOf(resp), "protocol upgrades are not accepted") {
				t.Fatalf("status %d, body %s; want 400 naming the upgrade", resp.StatusCode, bodyOf(resp))
			}
			if n := len(e.up.requests()) - before; n != 0 {
				t.Fatalf("the receiver got %d request(s)", n)
			}
		})
	}
}

// countingObserver records the statuses the handler reports.
type countingObserver struct {
	mu       sync.Mutex
	statuses []int
}

func (o *countingObserver) ObserveRequest(_, _ string, status int, _ time.Duration) {
	o.mu.Lock()
	o.statuses = append(o.statuses, status)
	o.mu.Unlock()
}

func (o *countingObserver) ObserveUpstream(time.Duration) {}

func (o *countingObserver) all() []int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]int(nil), o.statuses...)
}

func TestWebSocketTunnelClosesWhenItsTokenExpires(t *testing.T) {
	obs := &countingObserver{}
	e := newEnvOpts(t, `
  - path: /ws
    websocket: true
    require: { issuers: [idp] }
`, Options{Observer: obs})
	e.up.handle = func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" || r.Header.Get("Authorization") != "" {
			http.Error(w, "not an upgrade, or the token leaked", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_, _ = io.Copy(conn, brw) // echo until the gate closes the tunnel
	}
	claims := e.idp.Claims(audience)
	claims["exp"] = time.Now().Add(2 * time.Second).Unix()
	tok := e.idp.Mint(claims)
	conn, br := rawRequest(t, e, "GET /ws HTTP/1.1\r\nHost: gate\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nAuthorization: Bearer "+tok+"\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	if _, err := io.WriteString(conn, "ping"); err != nil {
		t.Fatal(err)
	}
	echo := make([]byte, 4)
	if _, err := io.ReadFull(br, echo); err != nil || string(echo) != "ping" {
		t.Fatalf("the tunnel does not carry data before expiry: %q %v", echo, err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = br.ReadByte()
	if err == nil || isTimeout(err) {
		t.Fatalf("the tunnel outlived its token: read returned %v", err)
	}
	if time.Unix(claims["exp"].(int64), 0).After(time.Now().Add(time.Second)) {
		t.Fatal("the tunnel closed long before the token expired")
	}
	deadline := time.Now().Add(2 * time.Second)
	for len(obs.all()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := obs.all(); len(got) != 1 || got[0] != http.StatusSwitchingProtocols {
		t.Fatalf("observed statuses %v, want [101]", got)
	}
}

func TestPathParametersAreRefusedBeforeRouting(t *testing.T) {
	e := newEnv(t, "")
	tok := e.token("webhooks:write")
	for _, p := range []string{
		"/hooks/aftership/..;/..;/admin",
		"/hooks/aftership/..%3b/..%3B/admin",
		"/hooks/aftership;jsessionid=ABC",
		"/hooks/aftership/orders;v=1",
	} {
		t.Run(p, func(t *testing.T) {
			before := len(e.up.requests())
			conn, br := rawRequest(t, e, "POST "+p+" HTTP/1.1\r\nHost: gate\r\nAuthorization: Bearer "+tok+"\r\nContent-Length: 0\r\n\r\n")
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "path parameters") {
				t.Fatalf("status %d %s, want 400", resp.StatusCode, body)
			}
			if n := len(e.up.requests()) - before; n != 0 {
				t.Fatalf("the receiver got %d request(s)", n)
			}
		})
	}
}

func TestAbsoluteFormTargetForwardsTheCleanedPath(t *testing.T) {
	e := newEnv(t, "")
	tok := e.token("webhooks:write")
	conn, br := rawRequest(t, e, "POST http://evil.example//hooks//aftership/x/../orders?a=1 HTTP/1.1\r\nHost: other.example\r\nAuthorization: Bearer "+tok+"\r\nContent-Length: 2\r\n\r\n{}")
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%v %v", resp, err)
	}
	got := e.up.requests()
	if len(got) != 1 || got[0].Path != "/hooks/aftership/orders" || got[0].RawQuery != "a=1" {
		t.Fatalf("the receiver got %+v, want the cleaned path /hooks/aftership/orders", got)
	}
}

func TestFoldedAccessTokenQueryNamesAreRefused(t *testing.T) {
	e := newEnv(t, "")
	tok := e.token("webhooks:write")
	for _, q := range []string{"access_token=x", "ACCESS_TOKEN=x", "Access_Token=x", "access.token=x", "access%5Ftoken=x", "access%5ftoken=x", "access-token=x", "access+token=x", "access_token[]=x", "a=1&access_token[0]=x", "access[token=x",
		"+access_token=x", "%20access_token=x", "access_token%20=x", "access_token%00=x", "access_token%00junk=x", "%09ACCESS.TOKEN%0A=x", "+access_token[]=x",
		// Unicode case folding: KELVIN SIGN, LONG S, ß and ẞ as "ss".
		"access_to%E2%84%AAen=x", "acce%C5%BF%C5%BF_token=x", "acce%C5%BFs_token=x", "acce%C3%9F_token=x", "ACCE%E1%BA%9E_TOKEN=x",
		// Brackets as Express's qs and Rack read them.
		"[access_token]=x", "%5Baccess_token%5D=x", "[access_token]]=x", "[access_token][]=x", "[access_token][0]=x", "[ACCESS_TOKEN]=x",
		"[access_token=x", "]access_token=x", "access_token]=x", "[]access_token=x", "[[access_token]]=x", "[acce%C3%9F_token]=x",
		// ";" as Rails splits, and escapes decoded leniently as qs does.
		"x=1;access_token=x", ";access_token=x", "x;ACCESS_TOKEN=x", "access_token%5B%5D%=x"} {
		t.Run(q, func(t *testing.T) {
			resp := e.do(http.MethodPost, "/hooks/aftership?"+q, "{}", "Authorization", "Bearer "+tok)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(resp.Header.Get("WWW-Authenticate"), invalidRequest) {
				t.Fatalf("status %d, want 400 invalid_request", resp.StatusCode)
			}
		})
	}
	for _, q := range []string{"token=x", "access_tokens=x", "my_access_token=x", "%00access_token=x", "+access+_token=x", "acce%C3%9Fs_token=x", "access_t%C3%B6ken=x", "a[access_token]=x", "[a]access_token=x"} {
		if resp := e.do(http.MethodPost, "/hooks/aftership?"+q, "{}", "Authorization", "Bearer "+tok); resp.StatusCode != http.StatusOK {
			t.Errorf("?%s: status %d, want 200 (not a token parameter)", q, resp.StatusCode)
		}
	}
}

func TestDeniedRequestIsAnsweredWithoutWaitingForItsBody(t *testing.T) {
	e := newEnv(t, "")
	for _, c := range []struct{ name, auth string }{
		{"no token", ""},
		{"bad token", "Authorization: Bearer not-a-real-token\r\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			// A body is announced and never sent: the answer must come at
			// once, and the connection must close rather than wait for it.
			conn, br := rawRequest(t, e, "POST /hooks/aftership HTTP/1.1\r\nHost: gate\r\n"+c.auth+"Content-Length: 1000\r\n\r\n")
			_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer while the body is outstanding: %v", err)
			}
			if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Connection") != "close" && !resp.Close {
				t.Fatalf("status %d, Connection %q; want 401 and close", resp.StatusCode, resp.Header.Get("Connection"))
			}
			_, _ = io.ReadAll(resp.Body)
			if _, err := br.ReadByte(); err == nil || isTimeout(err) {
				t.Fatalf("the connection stayed open after the denial: %v", err)
			}
		})
	}
}

func TestTricklingBodyIsCutOffAtTheReadDeadline(t *testing.T) {
	e := newEnv(t, "body_read_timeout: 300ms\n")
	tok := e.token("webhooks:write")
	start := time.Now()
	conn, br := rawRequest(t, e, "POST /hooks/aftership HTTP/1.1\r\nHost: gate\r\nAuthorization: Bearer "+tok+"\r\nContent-Length: 100\r\n\r\n0123456789")
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer after the body read deadline: %v", err)
	}
	_, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("status %d, want 408 (the sender's body was late)", resp.StatusCode)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("took %v", el)
	}
	for _, got := range e.up.requests() {
		if len(got.Body) == 100 {
			t.Fatalf("the receiver got a complete body: %+v", got)
		}
	}
}

func TestSpoofableHeadersInAnySpellingAreRemoved(t *testing.T) {
	for _, trusted := range []bool{false, true} {
		t.Run(fmt.Sprintf("trusted peer %v", trusted), func(t *testing.T) {
			extra := ""
			if trusted {
				extra = "trusted_proxies: [127.0.0.1]\n"
			}
			e := newEnv(t, extra)
			req, _ := http.NewRequest(http.MethodPost, e.front.URL+"/hooks/aftership", strings.NewReader("{}"))
			req.Header.Set("Authorization", "Bearer "+e.token("webhooks:write"))
			for _, h := range spoofable {
				req.Header[h] = []string{"spoofed"}
				req.Header[strings.ToLower(strings.ReplaceAll(h, "-", "_"))] = []string{"spoofed"}
			}
			resp, err := e.front.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := e.up.requests()
			if resp.StatusCode != http.StatusOK || len(got) != 1 {
				t.Fatalf("status %d, %d forwarded", resp.StatusCode, len(got))
			}
			proxySet := map[string]bool{}
			for _, h := range proxyStripped {
				proxySet[h] = true
			}
			for k, v := range got[0].Header {
				if v[0] != "spoofed" {
					continue
				}
				if trusted && proxySet[http.CanonicalHeaderKey(k)] {
					continue // a trusted proxy may say who the client is
				}
				t.Errorf("%s reached the receiver", k)
			}
			if trusted && got[0].Header.Get("X-Real-Ip") != "spoofed" {
				t.Error("X-Real-IP from a trusted proxy was dropped")
			}
		})
	}
}

func TestOpaqueTokenOnAJWTOnlyRouteCostsNoIntrospection(t *testing.T) {
	e := newEnv(t, "")
	e.intro.Add("opaque-partner-token", verifiertest.ActiveClaims("webhooks:write", time.Hour))
	resp := e.do(http.MethodPost, "/hooks/aftership", "{}", "Authorization", "Bearer opaque-partner-token")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "token not accepted on this route") {
		t.Fatalf("status %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if n := e.intro.Calls(); n != 0 {
		t.Fatalf("an opaque token on a JWT-only route made %d introspection call(s)", n)
	}
	if resp := e.do(http.MethodPost, "/hooks/partner", "{}", "Authorization", "Bearer opaque-partner-token"); resp.StatusCode != http.StatusOK {
		t.Fatalf("the same token on its own route: %d", resp.StatusCode)
	}
}

func TestIntrospectedRefreshTokenIsRefused(t *testing.T) {
	e := newEnv(t, "")
	claims := verifiertest.ActiveClaims("webhooks:write", time.Hour)
	claims["token_type"] = "refresh_token"
	e.intro.Add("a-refresh-token", claims)
	resp := e.do(http.MethodPost, "/hooks/partner", "{}", "Authorization", "Bearer a-refresh-token")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "not an access token") || len(e.up.requests()) != 0 {
		t.Fatalf("status %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

// floodBound bounds every request of the flood test: generous, so that a
// busy machine slows the test without failing it; it only keeps it from
// hanging.
const floodBound = time.Minute

func TestIntrospectionFloodGets503WhileCachedTokensPass(t *testing.T) {
	e := newEnv(t, "")
	const rate, burst = 2, 5
	in, err := verifier.NewIntrospection(verifier.IntrospectionOptions{
		Name: "partner", URL: e.intro.URL(), ClientID: e.intro.ClientID, ClientSecret: e.intro.ClientSecret,
		Issuer: "https://partner.example", Audiences: []string{audience}, MaxConcurrent: 4, RatePerSecond: rate, Burst: burst,
		Client: &http.Client{Timeout: floodBound},
	})
	if err != nil {
		t.Fatal(err)
	}
	cache, err := verifier.NewCache(verifier.NewSet(nil, &verifier.Issuer{Name: "partner", Iss: "https://partner.example", Verifier: in}),
		verifier.CacheOptions{MaxEntries: 1000, MaxTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// The property is "cached tokens pass", not "within 1s": the harness's
	// 1s upstream.response_timeout would turn a receiver slowed by a busy
	// machine into the gate's (correct) 504.
	cfg := *e.cfg
	cfg.Upstream.ResponseTimeout = config.Duration(floodBound)
	h, err := New(&cfg, cache, Options{})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(h)
	defer front.Close()
	client := &http.Client{Timeout: floodBound}
	defer client.CloseIdleConnections()
	e.intro.Add("good", verifiertest.ActiveClaims("webhooks:write", time.Hour))
	post := func(tok string) (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodPost, front.URL+"/hooks/partner", strings.NewReader("{}"))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		return resp, nil
	}
	if r, err := post("good"); err != nil || r.StatusCode != 200 {
		t.Fatalf("good token: %v %v", r, err)
	}
	const flood = 200
	start := time.Now()
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for i := range flood {
		wg.Go(func() {
			r, err := post(fmt.Sprintf("random-opaque-%d", i))
			if err != nil {
				t.Errorf("flood request: %v", err)
				return
			}
			mu.Lock()
			codes[r.StatusCode]++
			mu.Unlock()
			if r.StatusCode == http.StatusServiceUnavailable && r.Header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			if g, err := post("good"); err != nil || g.StatusCode != 200 {
				t.Errorf("a cached valid token during the flood: %v %v", g, err)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	// Calls are bounded by the bucket: its burst plus what it refilled
	// while the flood lasted (however long a busy machine made that).
	calls := e.intro.Calls()
	if bound := 1 + burst + int64(rate*elapsed.Seconds()) + 1; calls > bound {
		t.Fatalf("%d random tokens in %v made %d introspection calls; the bucket allows %d", flood, elapsed, calls, bound)
	}
	// Each random token was either asked about (401) or refused (503).
	if codes[http.StatusServiceUnavailable]+codes[http.StatusUnauthorized] != flood || int64(codes[http.StatusServiceUnavailable]) < flood-calls {
		t.Fatalf("answers %v with %d introspection calls: want every token past the bucket refused with 503", codes, calls)
	}
}

func TestTokenOfAKeyPublishedAMomentAgoPassesOnItsFirstAttempt(t *testing.T) {
	e := newEnv(t, "")
	if r := e.do(http.MethodPost, "/hooks/aftership", "{}", "Authorization", "Bearer "+e.token("webhooks:write")); r.StatusCode != 200 {
		t.Fatalf("warm-up: %d", r.StatusCode)
	}
	e.idp.Rotate(jose.RS256, false)
	if r := e.do(http.MethodPost, "/hooks/aftership", "{}", "Authorization", "Bearer "+e.token("webhooks:write")); r.StatusCode != 200 {
		t.Fatalf("first token of the new key: %d %s", r.StatusCode, bodyOf(r))
	}
}

func TestScopeHeaderCarriesOnlyValidScopeTokens(t *testing.T) {
	e := newEnv(t, "")
	c := e.idp.Claims(audience)
	delete(c, "scope")
	c["scp"] = []string{"webhooks:write", "admin webhooks:delete", "x\"y"}
	resp := e.do(http.MethodPost, "/hooks/aftership", "{}", "Authorization", "Bearer "+e.idp.Mint(c))
	got := e.up.requests()
	if resp.StatusCode != 200 || len(got) != 1 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if s := got[0].Header.Get("X-Auth-Scope"); s != "webhooks:write" {
		t.Fatalf("X-Auth-Scope = %q: a scope holding a space would read as two scopes", s)
	}
}

// TestRequestTrailersAreNotForwarded: a request's trailers never reach
// the receiver. A receiver that merges trailers into its headers
// (Apache's MergeTrailers, older Tomcat) would read, beside the headers
// the gate checked and set, values nothing checked: an outside attack
// sent a signed message whose trailers held "svix-id: evil" and
// "Webhook-Id: evil".
func TestRequestTrailersAreNotForwarded(t *testing.T) {
	e := newEnv(t, "")
	got := make(chan http.Header, 1)
	e.up.mu.Lock()
	e.up.handle = func(w http.ResponseWriter, r *http.Request) { got <- r.Trailer.Clone() }
	e.up.mu.Unlock()
	tok := e.token("webhooks:write")
	conn, br := rawRequest(t, e, "POST /hooks/aftership HTTP/1.1\r\nHost: gate\r\nAuthorization: Bearer "+tok+
		"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nTrailer: X-Auth-Subject, Webhook-Id, Svix-Id, X-Custom\r\n\r\n"+
		"2\r\n{}\r\n0\r\nX-Auth-Subject: evil\r\nWebhook-Id: evil\r\nSvix-Id: evil\r\nX-Custom: evil\r\n\r\n")
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	select {
	case tr := <-got:
		if len(tr) != 0 {
			t.Fatalf("the receiver got trailers %v, want none", tr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reached the receiver")
	}
}
