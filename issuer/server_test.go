package issuer

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/crypto/bcrypt"
)

const (
	testSecret = "s3cret+/%:x" // needs RFC 6749 §2.3.1 form-encoding in Basic
	testAud    = "https://hooks.example.com"
)

type fixture struct {
	srv  *Server
	http *httptest.Server
}

func newFixture(t testing.TB, mod func(*Options)) *fixture {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(testSecret), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	key, err := GenerateKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{}
	f.http = httptest.NewUnstartedServer(nil)
	o := Options{
		Issuer: "http://" + f.http.Listener.Addr().String(), Path: "/oauth2/token", Audience: testAud,
		Keys: []*Key{key}, TokenTTL: time.Hour,
		Clients: []Client{
			{ID: "aftership", SecretHash: hash, Scopes: []string{"webhooks:write", "apps.webhook:execute", "*:webhooks/**"}, DefaultScopes: []string{"webhooks:write"}},
		},
		PerClientRate: 100, PerClientBurst: 100, PerIPRate: 100, PerIPBurst: 100,
	}
	if mod != nil {
		mod(&o)
	}
	if f.srv, err = New(o); err != nil {
		t.Fatal(err)
	}
	f.http.Config.Handler = f.srv
	f.http.Start()
	t.Cleanup(f.http.Close)
	return f
}

func basic(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
}

func (f *fixture) post(t testing.TB, contentType string, body io.Reader, headers ...string) reply {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.http.URL+"/oauth2/token", body)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return reply{resp.StatusCode, resp.Header, m}
}

func form(kv ...string) io.Reader {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return strings.NewReader(v.Encode())
}

const formCT = "application/x-www-form-urlencoded"

func TestTokenRequestShapes(t *testing.T) {
	f := newFixture(t, nil)
	multipartBody := func(kv ...string) (string, io.Reader) {
		var b bytes.Buffer
		w := multipart.NewWriter(&b)
		for i := 0; i+1 < len(kv); i += 2 {
			_ = w.WriteField(kv[i], kv[i+1])
		}
		_ = w.Close()
		return w.FormDataContentType(), &b
	}
	cases := []struct {
		name      string
		send      func() reply
		wantScope string
	}{
		{"AfterShip: form body credentials", func() reply {
			return f.post(t, formCT, form("grant_type", "client_credentials", "client_id", "aftership", "client_secret", testSecret))
		}, "webhooks:write"},
		{"Deployteq: Basic + form with scope", func() reply {
			return f.post(t, formCT, form("grant_type", "client_credentials", "scope", "apps.webhook:execute"), "Authorization", basic("aftership", testSecret))
		}, "apps.webhook:execute"},
		{"MyParcel: JSON body, scope *", func() reply {
			b, _ := json.Marshal(map[string]string{"grant_type": "client_credentials", "client_id": "aftership", "client_secret": testSecret, "scope": "*"})
			return f.post(t, "application/json", bytes.NewReader(b))
		}, "webhooks:write apps.webhook:execute *:webhooks/**"},
		{"Akamai: Basic + multipart", func() reply {
			ct, body := multipartBody("grant_type", "client_credentials", "scope", "*:webhooks/**")
			return f.post(t, ct, body, "Authorization", basic("aftership", testSecret))
		}, "*:webhooks/**"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := c.send()
			if r.status != 200 {
				t.Fatalf("status %d: %v", r.status, r.body)
			}
			if r.body["token_type"] != "Bearer" || r.body["scope"] != c.wantScope {
				t.Fatalf("body = %v", r.body)
			}
			if exp, ok := r.body["expires_in"].(float64); !ok || exp != 3600 {
				t.Fatalf("expires_in = %#v, want the integer 3600", r.body["expires_in"])
			}
			if r.header.Get("Cache-Control") != "no-store" || r.header.Get("Pragma") != "no-cache" {
				t.Fatalf("headers = %v", r.header)
			}
			tok, _ := r.body["access_token"].(string)
			if strings.Count(tok, ".") != 2 {
				t.Fatalf("access_token is not a JWT: %q", tok)
			}
		})
	}
}

func TestTokenRequestErrors(t *testing.T) {
	f := newFixture(t, nil)
	cases := []struct {
		name   string
		send   func() reply
		status int
		code   string
		basic  bool
	}{
		{"wrong secret (body)", func() reply {
			return f.post(t, formCT, form("grant_type", "client_credentials", "client_id", "aftership", "client_secret", "nope"))
		}, 401, "invalid_client", false},
		{"wrong secret (Basic)", func() reply {
			return f.post(t, formCT, form("grant_type", "client_credentials"), "Authorization", basic("aftership", "nope"))
		}, 401, "invalid_client", true},
		{"unknown client", func() reply {
			return f.post(t, formCT, form("grant_type", "client_credentials", "client_id", "mallory", "client_secret", testSecret))
		}, 401, "invalid_client", false},
		{"no credentials", func() reply { return f.post(t, formCT, form("grant_type", "client_credentials")) }, 401, "invalid_client", false},
		{"wrong grant type", func() reply {
			return f.post(t, formCT, form("grant_type", "password", "client_id", "aftership", "client_secret", testSecret))
		}, 400, "unsupported_grant_type", false},
		{"authorization_code refused", func() reply {
			return f.post(t, formCT, form("grant_type", "authorization_code", "code", "x"), "Authorization", basic("aftership", testSecret))
		}, 400, "unsupported_grant_type", false},
		{"missing grant type", func() reply {
			return f.post(t, formCT, form("client_id", "aftership", "client_secret", testSecret))
		}, 400, "invalid_request", false},
		{"scope escalation", func() reply {
			return f.post(t, formCT, form("grant_type", "client_credentials", "scope", "webhooks:write admin"), "Authorization", basic("aftership", testSecret))
		}, 400, "invalid_scope", false},
		{"scope is not a pattern", func() reply {
			return f.post(t, formCT, form("grant_type", "client_credentials", "scope", "x:webhooks/y"), "Authorization", basic("aftership", testSecret))
		}, 400, "invalid_scope", false},
		{"both credential places", func() reply {
			return f.post(t, formCT, form("grant_type", "client_credentials", "client_id", "aftership", "client_secret", testSecret), "Authorization", basic("aftership", testSecret))
		}, 400, "invalid_request", false},
		{"duplicate parameter", func() reply {
			return f.post(t, formCT, strings.NewReader("grant_type=client_credentials&grant_type=client_credentials&client_id=aftership&client_secret=x"))
		}, 400, "invalid_request", false},
		{"secret in the URL", func() reply {
			req, _ := http.NewRequest(http.MethodPost, f.http.URL+"/oauth2/token?client_secret=x", form("grant_type", "client_credentials"))
			req.Header.Set("Content-Type", formCT)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var m map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&m)
			return reply{resp.StatusCode, resp.Header, m}
		}, 400, "invalid_request", false},
		{"JSON with a non-string", func() reply {
			return f.post(t, "application/json", strings.NewReader(`{"grant_type":"client_credentials","client_id":1}`))
		}, 400, "invalid_request", false},
		{"unsupported content type", func() reply {
			return f.post(t, "text/plain", strings.NewReader("grant_type=client_credentials"))
		}, 400, "invalid_request", false},
		{"GET", func() reply {
			resp, err := http.Get(f.http.URL + "/oauth2/token")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			return reply{status: resp.StatusCode, header: resp.Header, body: map[string]any{"error": "invalid_request"}}
		}, 405, "invalid_request", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := c.send()
			if r.status != c.status || r.body["error"] != c.code {
				t.Fatalf("got %d %v, want %d %s", r.status, r.body, c.status, c.code)
			}
			if got := r.header.Get("WWW-Authenticate"); (got != "") != c.basic || (c.basic && !strings.HasPrefix(got, "Basic")) {
				t.Fatalf("WWW-Authenticate = %q (basic expected: %v)", got, c.basic)
			}
			if _, has := r.body["access_token"]; has {
				t.Fatal("an error answer carries a token")
			}
		})
	}
}

func TestPerClientBucketCountsFailuresOnlyAndNeverBlocksTheRightSecret(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.PerClientRate, o.PerClientBurst = 0.1, 2; o.PerIPRate, o.PerIPBurst = 1000, 1000 })
	var last reply
	for _, id := range []string{"aftership", "no-such-client"} {
		for range 3 {
			last = f.post(t, formCT, form("grant_type", "client_credentials"), "Authorization", basic(id, "wrong-guess"))
		}
		if last.status != 429 || last.body["error"] != "slow_down" || last.header.Get("Retry-After") == "" {
			t.Fatalf("%s, third wrong secret: %d %v %v", id, last.status, last.body, last.header)
		}
	}
	// The sender whose id is being guessed keeps getting tokens.
	for range 3 {
		if r := f.post(t, formCT, form("grant_type", "client_credentials"), "Authorization", basic("aftership", testSecret)); r.status != 200 {
			t.Fatalf("the right secret during guessing: %d %v", r.status, r.body)
		}
	}
	g := newFixture(t, func(o *Options) { o.PerIPRate, o.PerIPBurst = 0.1, 1 })
	g.post(t, formCT, form("grant_type", "client_credentials", "client_id", "x", "client_secret", "y"))
	if r := g.post(t, formCT, form("grant_type", "client_credentials", "client_id", "x", "client_secret", "y")); r.status != 429 {
		t.Fatalf("per-IP limit: %d", r.status)
	}
}

// credentialShapes are every way a secret reaches the endpoint.
var credentialShapes = []struct {
	name   string
	secret string
	send   func(f *fixture, t testing.TB, id, secret string) reply
}{
	{"form body", "guess", func(f *fixture, t testing.TB, id, s string) reply {
		return f.post(t, formCT, form("grant_type", "client_credentials", "client_id", id, "client_secret", s))
	}},
	{"Basic, plain", "guess", func(f *fixture, t testing.TB, id, s string) reply {
		return f.post(t, formCT, form("grant_type", "client_credentials"), "Authorization", basic(id, s))
	}},
	{"Basic with + and %XX, not form-encoded", "a+b%41c", func(f *fixture, t testing.TB, id, s string) reply {
		return f.post(t, formCT, form("grant_type", "client_credentials"), "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(id+":"+s)))
	}},
	{"JSON body", "guess", func(f *fixture, t testing.TB, id, s string) reply {
		return f.post(t, "application/json", strings.NewReader(`{"grant_type":"client_credentials","client_id":"`+id+`","client_secret":"`+s+`"}`))
	}},
}

func TestUnknownClientCostsTheSameComparisonsOnEveryPath(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.PerClientBurst, o.PerIPBurst, o.PerIPFailBurst = 1000, 1000, 1000
		o.PerClientRate, o.PerIPRate, o.PerIPFailRate = 1000, 1000, 1000
	})
	var n atomic.Int64
	f.srv.compare = func(h, s []byte) error { n.Add(1); return bcrypt.CompareHashAndPassword(h, s) }
	for _, c := range credentialShapes {
		count := map[string]int64{}
		for _, id := range []string{"aftership", "no-such-client"} {
			n.Store(0)
			r := c.send(f, t, id, c.secret)
			if r.status != 401 || r.body["error"] != "invalid_client" {
				t.Fatalf("%s, %s: %d %v", c.name, id, r.status, r.body)
			}
			count[id] = n.Load()
		}
		if count["aftership"] != count["no-such-client"] || count["aftership"] == 0 {
			t.Errorf("%s: known id %d comparisons, unknown id %d", c.name, count["aftership"], count["no-such-client"])
		}
	}
}

func TestUnknownClientCostsWhatTheDearestClientCosts(t *testing.T) {
	// Configured hashes above the minimum cost, and a client_secret_file
	// client whose plain secret New hashes: an unknown id must cost what
	// the configured clients cost, and so must the client_secret_file
	// client. (Configured hashes of two costs are refused:
	// TestMixedBcryptCostsAreRefused.)
	const dearCost = bcrypt.MinCost + 2
	dear, err := bcrypt.GenerateFromPassword([]byte(testSecret), dearCost)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(o *Options) {
		o.Clients[0].SecretHash = dear // one cost for every configured hash
		o.Clients = append(o.Clients,
			Client{ID: "dear", SecretHash: dear, Scopes: []string{"webhooks:write"}},
			Client{ID: "from-file", Secret: []byte(testSecret), Scopes: []string{"webhooks:write"}})
		o.PerClientBurst, o.PerIPBurst, o.PerIPFailBurst = 1000, 1000, 1000
		o.PerClientRate, o.PerIPRate, o.PerIPFailRate = 1000, 1000, 1000
	})
	if got, _ := bcrypt.Cost(f.srv.dummy); got != dearCost {
		t.Fatalf("dummy hash cost %d, want the highest client cost %d", got, dearCost)
	}
	if got, _ := bcrypt.Cost(f.srv.clients["from-file"].SecretHash); got != dearCost {
		t.Fatalf("client_secret_file client hashed at cost %d, want %d", got, dearCost)
	}
	if r := f.post(t, formCT, form("grant_type", "client_credentials"), "Authorization", basic("from-file", testSecret)); r.status != 200 {
		t.Fatalf("client_secret_file client with its secret: %d %v", r.status, r.body)
	}
	// Work is counted, not timed: each comparison costs 2^cost rounds.
	var work atomic.Int64
	f.srv.compare = func(h, s []byte) error {
		c, _ := bcrypt.Cost(h)
		work.Add(1 << c)
		return bcrypt.CompareHashAndPassword(h, s)
	}
	for _, c := range credentialShapes {
		spent := map[string]int64{}
		for _, id := range []string{"dear", "from-file", "no-such-client"} {
			work.Store(0)
			if r := c.send(f, t, id, c.secret); r.status != 401 {
				t.Fatalf("%s, %s: %d %v", c.name, id, r.status, r.body)
			}
			spent[id] = work.Load()
		}
		if spent["dear"] == 0 || spent["dear"] != spent["no-such-client"] || spent["from-file"] != spent["no-such-client"] {
			t.Errorf("%s: bcrypt rounds %v; want the same for every id", c.name, spent)
		}
	}
}

// BenchmarkUnknownVsKnownClient times wrong secrets for a known and an
// unknown client id, interleaved so that load on the machine falls on both
// alike, and reports unknown/known (1.0: the timing says nothing). The
// proof that both paths do the same work is
// TestUnknownClientCostsTheSameComparisonsOnEveryPath; this measures it.
func BenchmarkUnknownVsKnownClient(b *testing.B) {
	hash, err := bcrypt.GenerateFromPassword([]byte(testSecret), bcrypt.DefaultCost)
	if err != nil {
		b.Fatal(err)
	}
	f := newFixture(b, func(o *Options) {
		o.Clients[0].SecretHash = hash
		o.PerClientBurst, o.PerIPBurst, o.PerIPFailBurst = 1<<30, 1<<30, 1<<30
		o.PerClientRate, o.PerIPRate, o.PerIPFailRate = 1e9, 1e9, 1e9
	})
	for _, c := range credentialShapes {
		b.Run(c.name, func(b *testing.B) {
			var known, unknown time.Duration
			for b.Loop() {
				for _, id := range []string{"aftership", "no-such-client"} {
					start := time.Now()
					if r := c.send(f, b, id, c.secret); r.status != 401 {
						b.Fatalf("%s: %d", id, r.status)
					}
					if id == "aftership" {
						known += time.Since(start)
					} else {
						unknown += time.Since(start)
					}
				}
			}
			b.ReportMetric(float64(unknown)/float64(known), "unknown/known")
		})
	}
}

func TestJSONBodyWithAFormContentTypeIsNamed(t *testing.T) {
	f := newFixture(t, nil)
	r := f.post(t, formCT, strings.NewReader(`{"grant_type":"client_credentials","client_id":"aftership","client_secret":"`+testSecret+`"}`))
	if d, _ := r.body["error_description"].(string); r.status != 400 || !strings.Contains(d, "the body is JSON but its Content-Type is a form's") {
		t.Fatalf("%d %v", r.status, r.body)
	}
	r = f.post(t, formCT, form("client_id", "aftership"))
	if d, _ := r.body["error_description"].(string); r.status != 400 || d != "grant_type is required" {
		t.Fatalf("form without grant_type: %d %v", r.status, r.body)
	}
}

func TestJSONBodyWithADuplicateKeyIsRefused(t *testing.T) {
	f := newFixture(t, nil)
	r := f.post(t, "application/json", strings.NewReader(`{"grant_type":"client_credentials","client_id":"aftership","client_secret":"x","client_secret":"`+testSecret+`"}`))
	if r.status != 400 || !strings.Contains(r.body["error_description"].(string), "more than once") {
		t.Fatalf("%d %v", r.status, r.body)
	}
}

func TestConcurrentHashChecksAreCapped(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.MaxConcurrentHashChecks = 1 })
	// Hold the only slot; a login must wait for it, not run beside it.
	if err := f.srv.hashSem.Acquire(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	done := make(chan reply, 1)
	go func() {
		done <- f.post(t, formCT, form("grant_type", "client_credentials"), "Authorization", basic("aftership", testSecret))
	}()
	select {
	case r := <-done:
		t.Fatalf("login ran while the hash slot was taken: %d", r.status)
	case <-time.After(200 * time.Millisecond):
	}
	f.srv.hashSem.Release(1)
	if r := <-done; r.status != 200 {
		t.Fatalf("after release: %d %v", r.status, r.body)
	}
}

func TestIssuedTokenVerifiesWithPlainGoOIDC(t *testing.T) {
	f := newFixture(t, nil)
	r := f.post(t, formCT, form("grant_type", "client_credentials"), "Authorization", basic("aftership", testSecret))
	tok := r.body["access_token"].(string)
	// A second replica (or any OIDC library) finds the keys by discovery.
	provider, err := oidc.NewProvider(t.Context(), f.srv.o.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	idt, err := provider.Verifier(&oidc.Config{ClientID: testAud, SupportedSigningAlgs: []string{"ES256"}}).Verify(t.Context(), tok)
	if err != nil {
		t.Fatalf("go-oidc rejects our token: %v", err)
	}
	var c struct {
		ClientID string `json:"client_id"`
		Scope    string `json:"scope"`
		JTI      string `json:"jti"`
	}
	if err := idt.Claims(&c); err != nil || idt.Subject != "aftership" || c.ClientID != "aftership" || c.Scope != "webhooks:write" || c.JTI == "" {
		t.Fatalf("claims: sub=%q %+v %v", idt.Subject, c, err)
	}
	// RFC 8414 metadata.
	resp, err := http.Get(f.http.URL + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var meta map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&meta)
	if meta["token_endpoint"] != f.http.URL+"/oauth2/token" || meta["issuer"] != f.srv.o.Issuer {
		t.Fatalf("metadata = %v", meta)
	}
}

func TestRotationPublishesEveryKeyAndSignsWithTheFirst(t *testing.T) {
	old, _ := GenerateKey("RS256")
	f := newFixture(t, func(o *Options) { o.Keys = append(o.Keys, old) })
	resp, err := http.Get(f.http.URL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&set)
	if len(set.Keys) != 2 {
		t.Fatalf("published %d keys, want 2", len(set.Keys))
	}
	for _, k := range set.Keys {
		if _, private := k["d"]; private {
			t.Fatal("JWKS publishes a private key")
		}
	}
	r := f.post(t, formCT, form("grant_type", "client_credentials"), "Authorization", basic("aftership", testSecret))
	hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(r.body["access_token"].(string), ".")[0])
	var h map[string]any
	_ = json.Unmarshal(hdr, &h)
	if h["kid"] != f.srv.o.Keys[0].ID || h["typ"] != TokenType || h["alg"] != "ES256" {
		t.Fatalf("header = %v", h)
	}
}

func TestKeyPEMRoundTrip(t *testing.T) {
	for _, alg := range []string{"ES256", "RS256"} {
		k, err := GenerateKey(alg)
		if err != nil {
			t.Fatal(err)
		}
		pemBytes, err := EncodeKeyPEM(k)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseKeyPEM(pemBytes)
		if err != nil || back.ID != k.ID || string(back.Alg) != alg {
			t.Fatalf("%s: %v %+v", alg, err, back)
		}
	}
	if _, err := ParseKeyPEM([]byte("not a key")); err == nil {
		t.Fatal("garbage parsed as a key")
	}
}

func TestLoginQueuedBehindTheHashSlotsGets503AfterMaxHashWait(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.MaxConcurrentHashChecks = 1; o.MaxHashWait = 300 * time.Millisecond })
	// Hold the only slot for longer than a request may wait for it.
	if err := f.srv.hashSem.Acquire(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	defer f.srv.hashSem.Release(1)
	done := make(chan reply, 1)
	go func() {
		done <- f.post(t, formCT, form("grant_type", "client_credentials"), "Authorization", basic("aftership", testSecret))
	}()
	select {
	case r := <-done:
		if r.status != 503 || r.body["error"] != "temporarily_unavailable" {
			t.Fatalf("queued login: %d %v, want 503 temporarily_unavailable", r.status, r.body)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a login queued behind a held hash slot was still waiting after 30 s")
	}
}
