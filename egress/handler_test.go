package egress

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tokengate/tokengate/egress/egresstest"
)

// events records Observer calls.
type events struct {
	mu      sync.Mutex
	codes   []int
	retries []string
}

func (e *events) EgressRequest(_ string, code int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.codes = append(e.codes, code)
}

func (e *events) EgressRetry(_, outcome string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.retries = append(e.retries, outcome)
}

func (e *events) retried() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.retries...)
}

func newTestHandler(t *testing.T, upstream string, s *Source, mod func(*HandlerOptions)) *Handler {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	o := HandlerOptions{Name: s.Name(), Upstream: u, Tokens: s}
	if mod != nil {
		mod(&o)
	}
	return NewHandler(o)
}

// fixture is a token endpoint (1h tokens), an upstream checking its
// tokens, and a Source for it, all closed with the test.
func fixture(t *testing.T) (*egresstest.TokenEndpoint, *egresstest.Upstream, *Source) {
	t.Helper()
	e := egresstest.NewTokenEndpoint(testID, testSecret, time.Hour)
	t.Cleanup(e.Close)
	up := egresstest.NewUpstream(e)
	t.Cleanup(up.Close)
	s := newTestSource(e, nil)
	t.Cleanup(s.Close)
	return e, up, s
}

func post(t *testing.T, h http.Handler, path, body string) int {
	t.Helper()
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, httptest.NewRequest(http.MethodPost, "http://localhost"+path, strings.NewReader(body)))
	return rr.Code
}

// TestRetryOn401: the upstream refuses a revoked token; the egress drops
// it, fetches one new token and sends the same body once more.
func TestRetryOn401(t *testing.T) {
	e, up, s := fixture(t)
	ev := &events{}
	h := newTestHandler(t, up.URL+"/api", s, func(o *HandlerOptions) { o.Observer = ev })
	tok, err := s.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	e.Revoke(tok.Value)
	body := `{"event":"order.created","id":42}`
	if code := post(t, h, "/hooks/run?x=1", body); code != http.StatusOK {
		t.Fatalf("status %d, want 200 after one retry", code)
	}
	seen := up.Seen()
	if len(seen) != 2 || seen[0].Err == nil || seen[1].Err != nil {
		t.Fatalf("upstream saw %d requests (%+v), want a refused one then an accepted one", len(seen), seen)
	}
	for _, s := range seen {
		if string(s.Body) != body || s.Path != "/api/hooks/run" || s.Query != "x=1" {
			t.Errorf("request %s?%s body %q: want the same body and path both times", s.Path, s.Query, s.Body)
		}
	}
	if e.Count() != 2 {
		t.Errorf("token requests %d, want 2 (one refresh)", e.Count())
	}
	if got := ev.retried(); len(got) != 1 || got[0] != RetryDone {
		t.Errorf("retry outcomes %v, want [retried]", got)
	}
}

// TestRetryNeverLoops: an upstream that refuses every token gets each
// request at most twice, and renewals are throttled.
func TestRetryNeverLoops(t *testing.T) {
	e := egresstest.NewTokenEndpoint(testID, testSecret, time.Hour)
	defer e.Close()
	var hits int
	var mu sync.Mutex
	refuser := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer refuser.Close()
	s := newTestSource(e, nil)
	defer s.Close()
	ev := &events{}
	h := newTestHandler(t, refuser.URL, s, func(o *HandlerOptions) { o.Observer = ev })
	for range 3 {
		if code := post(t, h, "/x", "{}"); code != http.StatusUnauthorized {
			t.Fatalf("status %d, want the upstream's 401", code)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// First: sent, refused, renewed, sent again. Then renewals are
	// throttled (one per 5s): each request is sent once.
	if hits != 4 {
		t.Errorf("upstream hits %d, want 4", hits)
	}
	if e.Count() != 2 {
		t.Errorf("token requests %d, want 2", e.Count())
	}
	if got := ev.retried(); len(got) != 3 || got[0] != RetryDone || got[1] != RetryThrottled || got[2] != RetryThrottled {
		t.Errorf("retry outcomes %v", got)
	}
}

// TestLargeBodyNotRetried: a body beyond the retry limit streams through
// and a 401 answer is passed back without a retry.
func TestLargeBodyNotRetried(t *testing.T) {
	e, up, s := fixture(t)
	ev := &events{}
	h := newTestHandler(t, up.URL, s, func(o *HandlerOptions) { o.Observer = ev; o.RetryBodyLimit = 1024 })
	tok, _ := s.Token(context.Background())
	e.Revoke(tok.Value)
	big := strings.Repeat("x", 4096)
	// Chunked: the size is not known up front.
	req := httptest.NewRequest(http.MethodPost, "http://localhost/upload", io.MultiReader(strings.NewReader(big)))
	req.ContentLength = -1
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, req)
	if rr.Code != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401 passed through", rr.Code)
	}
	seen := up.Seen()
	if len(seen) != 1 || len(seen[0].Body) != len(big) {
		t.Fatalf("upstream saw %d requests; body %d bytes, want 1 request with all %d", len(seen), len(seen[0].Body), len(big))
	}
	if got := ev.retried(); len(got) != 1 || got[0] != RetryNotReplayable {
		t.Errorf("retry outcomes %v, want [not_replayable]", got)
	}
	if e.Count() != 1 {
		t.Errorf("token requests %d, want 1", e.Count())
	}
}

// TestHeaders: the app's Authorization is replaced, hop-by-hop headers go,
// Host is the upstream's, and X-Forwarded-* appear only when configured.
func TestHeaders(t *testing.T) {
	_, up, s := fixture(t)
	upURL, _ := url.Parse(up.URL)
	for _, fwd := range []bool{false, true} {
		h := newTestHandler(t, up.URL, s, func(o *HandlerOptions) { o.ForwardedHeaders = fwd })
		req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8081/v1/shipments", strings.NewReader("{}"))
		req.Header.Set("Authorization", "Bearer app-supplied")
		req.Header.Set("Connection", "X-Hop")
		req.Header.Set("X-Hop", "1")
		req.Header.Set("Proxy-Authorization", "Basic Zm9vOmJhcg==")
		req.Header.Set("X-Forwarded-For", "10.9.9.9")
		req.Header.Set("Content-Type", "application/vnd.api+json")
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, req)
		if rr.Code != http.StatusOK {
			t.Fatalf("status %d: %s", rr.Code, rr.Body)
		}
		seen := up.Seen()
		got := seen[len(seen)-1]
		if got.Err != nil || got.Token == "app-supplied" {
			t.Errorf("token not replaced: %v", got.Err)
		}
		if got.Host != upURL.Host {
			t.Errorf("Host %q, want %q", got.Host, upURL.Host)
		}
		for _, k := range []string{"X-Hop", "Proxy-Authorization"} {
			if got.Header.Get(k) != "" {
				t.Errorf("%s forwarded", k)
			}
		}
		if got.Header.Get("Content-Type") != "application/vnd.api+json" {
			t.Errorf("Content-Type lost")
		}
		xff := got.Header.Get("X-Forwarded-For")
		switch {
		case !fwd && (xff != "" || got.Header.Get("X-Forwarded-Host") != ""):
			t.Errorf("X-Forwarded-* added without forwarded_headers: %v", got.Header)
		case fwd && (xff != "192.0.2.1" || got.Header.Get("X-Forwarded-Host") != "127.0.0.1:8081"):
			t.Errorf("forwarded_headers: X-Forwarded-For %q, Host %q (the app's 10.9.9.9 must not pass)", xff, got.Header.Get("X-Forwarded-Host"))
		}
	}
}

// TestNoTokenNoForward: without a token the app gets 503 with Retry-After
// and a JSON body naming the egress and the cause; the upstream sees
// nothing and the secret appears nowhere, logs included.
func TestNoTokenNoForward(t *testing.T) {
	e := egresstest.NewTokenEndpoint(testID, testSecret, time.Hour)
	defer e.Close()
	e.Script(func(int) egresstest.Answer {
		return egresstest.Answer{Status: 401, Body: `{"error":"invalid_client","error_description":"secret ` + testSecret + ` is wrong"}`}
	})
	up := egresstest.NewUpstream(e)
	defer up.Close()
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	s := newTestSource(e, func(o *SourceOptions) { o.Logger = log; o.Name = "myparcel" })
	defer s.Close()
	h := newTestHandler(t, up.URL, s, func(o *HandlerOptions) { o.Logger = log })
	rr := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "http://localhost/shipments", strings.NewReader("{}"))
	h.ServeHTTP(rr, req)
	if rr.Code != http.StatusServiceUnavailable || rr.Header().Get("Retry-After") == "" {
		t.Fatalf("status %d Retry-After %q, want 503 with Retry-After", rr.Code, rr.Header().Get("Retry-After"))
	}
	var body errorBody
	if err := json.Unmarshal(rr.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if body.Error != "token_unavailable" || body.Egress != "myparcel" || !strings.Contains(body.Cause, "invalid_client") {
		t.Errorf("body %+v", body)
	}
	if len(up.Seen()) != 0 {
		t.Errorf("the upstream got %d requests without a token", len(up.Seen()))
	}
	var all bytes.Buffer
	all.Write(rr.Body.Bytes())
	for _, l := range logs.All() {
		all.WriteString(l.Message)
		for k, v := range l.ContextMap() {
			all.WriteString(k)
			all.WriteString(toString(v))
		}
	}
	if strings.Contains(all.String(), testSecret) {
		t.Fatalf("the client secret leaked into the answer or the logs: %s", all.String())
	}
	if !strings.Contains(all.String(), "[redacted]") {
		t.Errorf("the endpoint's description was not logged (redacted): %s", all.String())
	}
}

func toString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestBadPaths: requests that climb out of the upstream's base path or
// ask for an upgrade are refused before a token is spent.
func TestBadPaths(t *testing.T) {
	e, up, s := fixture(t)
	h := newTestHandler(t, up.URL+"/customer-1/webhooks", s, nil)
	for _, p := range []string{"/../customer-2/webhooks", "/a/./b", "/a//b", "/%2e%2e/x", `/..\customer-2/webhooks`, "/..%5C..%5Ccustomer-2", "/a%00b", "/a%0D%0AX-Injected:%201"} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL.Path, _ = url.PathUnescape(p)
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, req)
		if rr.Code != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", p, rr.Code)
		}
	}
	req := httptest.NewRequest(http.MethodGet, "/ws", nil)
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, req)
	if rr.Code != http.StatusBadRequest {
		t.Errorf("upgrade: status %d", rr.Code)
	}
	if len(up.Seen()) != 0 || e.Count() != 0 {
		t.Errorf("refused requests reached the upstream (%d) or spent a token (%d)", len(up.Seen()), e.Count())
	}
}

// TestSemicolonPathsRefused: Tomcat and Spring upstreams strip path
// parameters, so "/..;/admin" would reach the vendor as "/../admin",
// outside the base path, with the token. Through a real listener, every
// spelling (literal or %3B) is refused with 400 before a token is spent;
// a clean path next to them still passes.
func TestSemicolonPathsRefused(t *testing.T) {
	e, up, s := fixture(t)
	srv := httptest.NewServer(newTestHandler(t, up.URL+"/customer-1/webhooks", s, nil))
	defer srv.Close()
	for _, p := range []string{"/..;/admin", "/x/..;/..;/admin", "/a;jsessionid=1", "/..%3B/admin", "/..%3b/admin", "/x%3By", "/;"} {
		req, err := http.NewRequest(http.MethodPost, srv.URL+p, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "semicolon") {
			t.Errorf("%s: status %d %s, want 400 naming the semicolon", p, resp.StatusCode, b)
		}
	}
	if len(up.Seen()) != 0 || e.Count() != 0 {
		t.Fatalf("refused requests reached the upstream (%d) or spent a token (%d)", len(up.Seen()), e.Count())
	}
	resp, err := http.Post(srv.URL+"/orders?session=a;b", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if seen := up.Seen(); resp.StatusCode != http.StatusOK || len(seen) != 1 || seen[0].Path != "/customer-1/webhooks/orders" {
		t.Fatalf("a clean path (a semicolon in the query only): status %d, upstream saw %+v", resp.StatusCode, seen)
	}
}

// TestTrickledBodyGets408: an app (or anyone reaching the listener) that
// declares a body and sends part of it is answered 408 after
// BodyReadTimeout, whether the body was being kept for a retry (no token
// spent, nothing forwarded) or streamed to the upstream.
func TestTrickledBodyGets408(t *testing.T) {
	for _, tc := range []struct {
		name       string
		retryLimit int64
	}{{"kept", 0}, {"streamed", 16}} {
		t.Run(tc.name, func(t *testing.T) {
			e, up, s := fixture(t)
			srv := httptest.NewServer(newTestHandler(t, up.URL, s, func(o *HandlerOptions) {
				o.BodyReadTimeout = 300 * time.Millisecond
				o.RetryBodyLimit = tc.retryLimit
			}))
			defer srv.Close()
			c, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, _ = io.WriteString(c, "POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n0123456789012345678901234567890123456789")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no answer within 10s: %v", err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(b), "request_timeout") {
				t.Fatalf("status %d %s, want 408", resp.StatusCode, b)
			}
			if tc.retryLimit == 0 && (len(up.Seen()) != 0 || e.Count() != 0) {
				t.Fatalf("a kept body that never arrived reached the upstream (%d) or spent a token (%d)", len(up.Seen()), e.Count())
			}
		})
	}
}

// TestBrowserRequestsRefused: a web page in a browser on the app's machine
// can reach a loopback egress (a cross-site POST needs no preflight; a
// DNS-rebound page even reads the answer). Requests marked as a browser's
// (Sec-Fetch-Site other than none on any line, any Origin header, a
// Referer naming a page not on a loopback name) and, with LoopbackHosts,
// requests addressed to another name are refused before a token is
// spent; server-side clients (Node's fetch sends Sec-Fetch-Mode only; some
// send a loopback Referer) pass.
func TestBrowserRequestsRefused(t *testing.T) {
	for _, tc := range []struct {
		name       string
		host       string
		header     [][2]string // added in order: a name may repeat
		loopback   bool
		want       int
		clientCert bool // the request came with a verified client certificate
	}{
		{"cross-site page", "127.0.0.1:8081", [][2]string{{"Sec-Fetch-Site", "cross-site"}, {"Sec-Fetch-Mode", "no-cors"}}, true, 403, false},
		{"same-site page", "localhost:8081", [][2]string{{"Sec-Fetch-Site", "same-site"}}, true, 403, false},
		{"rebound page, same-origin", "127.0.0.1:8081", [][2]string{{"Sec-Fetch-Site", "same-origin"}}, true, 403, false},
		{"older browser, Origin only", "127.0.0.1:8081", [][2]string{{"Origin", "https://evil.example"}}, true, 403, false},
		{"sandboxed page", "127.0.0.1:8081", [][2]string{{"Origin", "null"}}, true, 403, false},
		{"rebound name", "evil.example:8081", nil, true, 421, false},
		{"rebound name, trailing dot", "evil.example.:8081", nil, true, 421, false},
		{"loopback look-alike", "localhost.evil.example:8081", nil, true, 421, false},
		{"loopback look-alike IP name", "127.0.0.1.nip.io", nil, true, 421, false},
		{"localhost", "localhost:8081", nil, true, 200, false},
		{"LOCALHOST", "LOCALHOST:8081", nil, true, 200, false},
		{"name under .localhost", "app.localhost:8081", nil, true, 200, false},
		{"127.0.0.1", "127.0.0.1:8081", nil, true, 200, false},
		{"other loopback IP, no port", "127.0.0.2", nil, true, 200, false},
		{"IPv6 loopback", "[::1]:8081", nil, true, 200, false},
		{"HTTP/1.0 client without Host", "", nil, true, 200, false},
		{"Node fetch", "127.0.0.1:8081", [][2]string{{"Sec-Fetch-Mode", "cors"}, {"User-Agent", "node"}}, true, 200, false},
		{"address typed by the user", "127.0.0.1:8081", [][2]string{{"Sec-Fetch-Site", "none"}}, true, 200, false},
		{"Sec-Fetch-Site none, then cross-site", "127.0.0.1:8081", [][2]string{{"Sec-Fetch-Site", "none"}, {"Sec-Fetch-Site", "cross-site"}}, true, 403, false},
		{"Sec-Fetch-Site none twice", "127.0.0.1:8081", [][2]string{{"Sec-Fetch-Site", "none"}, {"Sec-Fetch-Site", "none"}}, true, 200, false},
		{"Sec-Fetch-Site empty", "127.0.0.1:8081", [][2]string{{"Sec-Fetch-Site", ""}}, true, 403, false},
		{"empty Origin", "127.0.0.1:8081", [][2]string{{"Origin", ""}}, true, 403, false},
		{"old browser's <img>: Referer only", "127.0.0.1:8081", [][2]string{{"Referer", "https://evil.example/page"}}, true, 403, false},
		{"Referer on a loopback look-alike", "127.0.0.1:8081", [][2]string{{"Referer", "http://localhost.evil.example/"}}, true, 403, false},
		{"Referer with loopback userinfo", "127.0.0.1:8081", [][2]string{{"Referer", "http://localhost@evil.example/"}}, true, 403, false},
		{"Referer without a host", "127.0.0.1:8081", [][2]string{{"Referer", "/relative"}}, true, 403, false},
		{"a second Referer names a web page", "127.0.0.1:8081", [][2]string{{"Referer", "http://localhost:3000/"}, {"Referer", "https://evil.example/"}}, true, 403, false},
		{"Referer on a web page, client certificates required", "egress.internal:8443", [][2]string{{"Referer", "https://evil.example/"}}, false, 403, true},
		{"server-side client, loopback Referer", "127.0.0.1:8081", [][2]string{{"Referer", "http://localhost:3000/admin"}}, true, 200, false},
		{"server-side client, loopback IP Referer", "127.0.0.1:8081", [][2]string{{"Referer", "http://[::1]:3000/"}}, true, 200, false},
		{"empty Referer", "127.0.0.1:8081", [][2]string{{"Referer", ""}}, true, 200, false},
		{"any name when client certificates are required", "egress.internal:8443", nil, false, 200, true},
		{"no certificate on the connection after all", "evil.example:8081", nil, false, 421, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, up, s := fixture(t)
			h := newTestHandler(t, up.URL, s, func(o *HandlerOptions) { o.LoopbackHosts = tc.loopback })
			req := httptest.NewRequest(http.MethodPost, "/v1/hooks", strings.NewReader("{}"))
			req.Host = tc.host
			if tc.clientCert {
				req.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{}}}}
			}
			for _, kv := range tc.header {
				req.Header.Add(kv[0], kv[1])
			}
			rr := httptest.NewRecorder()
			h.ServeHTTP(rr, req)
			if rr.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", rr.Code, tc.want, rr.Body)
			}
			if tc.want == http.StatusOK {
				return
			}
			var body errorBody
			if err := json.Unmarshal(rr.Body.Bytes(), &body); err != nil || body.Egress != s.Name() || body.Cause == "" {
				t.Errorf("body %s (%v)", rr.Body, err)
			}
			if len(up.Seen()) != 0 || e.Count() != 0 {
				t.Errorf("a refused request reached the upstream (%d) or spent a token request (%d)", len(up.Seen()), e.Count())
			}
		})
	}
}

// TestSlowBodyGetsTheCurrentToken: a kept body is read after the token is
// first taken; when the token is replaced meanwhile, the request leaves
// with the current one.
func TestSlowBodyGetsTheCurrentToken(t *testing.T) {
	e, up, s := fixture(t)
	h := newTestHandler(t, up.URL, s, nil)
	first, err := s.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	req := httptest.NewRequest(http.MethodPost, "http://localhost/v1/hooks", pr)
	req.ContentLength = 2
	done := make(chan int)
	go func() {
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, req)
		done <- rr.Code
	}()
	_, _ = pw.Write([]byte("{"))
	// The token is dropped and replaced while the body is still arriving.
	if !s.Invalidate(first) {
		t.Fatal("Invalidate refused")
	}
	second, err := s.Token(context.Background())
	if err != nil || second.Value == first.Value {
		t.Fatalf("no new token: %v", err)
	}
	_, _ = pw.Write([]byte("}"))
	pw.Close()
	if code := <-done; code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	seen := up.Seen()
	if len(seen) != 1 || seen[0].Token != second.Value {
		t.Fatalf("the upstream got %d requests; the token sent was not the current one", len(seen))
	}
	if e.Count() != 2 {
		t.Errorf("token requests %d, want 2", e.Count())
	}
}

// TestBrowserMarksOnTheWire: through a real listener, an empty Origin
// line and a cross-site Sec-Fetch-Site line after a "none" one reach the
// screen as sent and are refused with 403 before a token is spent.
func TestBrowserMarksOnTheWire(t *testing.T) {
	e, up, s := fixture(t)
	srv := httptest.NewServer(newTestHandler(t, up.URL, s, func(o *HandlerOptions) { o.LoopbackHosts = true }))
	defer srv.Close()
	for _, head := range []string{"Origin:\r\n", "Sec-Fetch-Site: none\r\nSec-Fetch-Site: cross-site\r\n", "Referer: http://evil.example/\r\n"} {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(c, "POST /v1/hooks HTTP/1.1\r\nHost: 127.0.0.1\r\n"+head+"Content-Length: 2\r\nConnection: close\r\n\r\n{}")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			c.Close()
			t.Fatalf("%q: no answer within 10s: %v", head, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		c.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "browser_request") {
			t.Errorf("%q: status %d %s, want 403 browser_request", head, resp.StatusCode, b)
		}
	}
	if len(up.Seen()) != 0 || e.Count() != 0 {
		t.Fatalf("a refused request reached the upstream (%d) or spent a token request (%d)", len(up.Seen()), e.Count())
	}
}
