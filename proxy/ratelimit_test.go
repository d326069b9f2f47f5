package proxy

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/queue"
	"github.com/tokengate/tokengate/ratelimit"
	"github.com/tokengate/tokengate/signature"
	"github.com/tokengate/tokengate/verifier"
)

// limitedRoutes follow baseRoutes' six: one route per rate_limit key.
const limitedRoutes = `  - name: by-client
    path: /hooks/by-client
    require: { issuers: [idp] }
    rate_limit: { key: client_id, rate: 1/h, burst: 2 }
  - name: by-subject
    path: /hooks/by-subject
    require: { issuers: [idp] }
    rate_limit: { key: subject, rate: 1/h, burst: 1 }
  - name: signed
    path: /hooks/signed
    signature: { scheme: github, secrets: ["${TG_TEST_GH}"] }
    rate_limit: { key: signature_route, rate: 1/s, burst: 1 }
  - name: by-ip
    path: /hooks/by-ip
    public: true
    rate_limit: { key: remote_ip, rate: 1/h, burst: 1 }
`

// limitObserver counts rate-limited requests by route.
type limitObserver struct {
	mu      sync.Mutex
	limited map[string]int
}

func (o *limitObserver) ObserveRequest(string, string, int, time.Duration) {}
func (o *limitObserver) ObserveUpstream(time.Duration)                     {}
func (o *limitObserver) ObserveRateLimited(route string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.limited[route]++
}

func (o *limitObserver) count(route string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.limited[route]
}

type limitedEnv struct {
	*env
	clock *fakeClock
	obs   *limitObserver
}

// newLimitedEnv is a gate with limitedRoutes; the signed route's bucket
// runs on an injected clock, the others on their own in-memory limiters.
func newLimitedEnv(t *testing.T) *limitedEnv {
	t.Helper()
	t.Setenv("TG_TEST_GH", ghSecret)
	sig, err := signature.New(signature.Options{Scheme: signature.GitHub, Route: "signed", Secrets: []string{ghSecret},
		Store: signature.NewMemoryStore(signature.MemoryOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	c := &fakeClock{t: time.Now()}
	signedLimit := ratelimit.New(RouteLimiterName("signed"), ratelimit.Limit{Rate: 1, Per: time.Second, Burst: 1}, ratelimit.Options{Now: c.now})
	obs := &limitObserver{limited: map[string]int{}}
	e := newEnvOpts(t, limitedRoutes, Options{
		Observer:   obs,
		Signatures: []SignatureVerifier{nil, nil, nil, nil, nil, nil, nil, nil, sig},
		RateLimits: []RateLimiter{nil, nil, nil, nil, nil, nil, nil, nil, signedLimit},
	})
	return &limitedEnv{env: e, clock: c, obs: obs}
}

// tokenFor mints a valid token with the given client_id and subject.
func (e *env) tokenFor(clientID, subject string) string {
	c := e.idp.Claims(audience)
	c["client_id"], c["sub"] = clientID, subject
	c["jti"] = clientID + subject + strconv.FormatInt(time.Now().UnixNano(), 10)
	return e.idp.Mint(c)
}

// want429 checks a rate-limit refusal: 429, a whole-second Retry-After
// within [min, max], the JSON error, and returns nothing forwarded.
func want429(t *testing.T, resp *http.Response, minWait, maxWait int) {
	t.Helper()
	var body struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if resp.StatusCode != http.StatusTooManyRequests || json.Unmarshal([]byte(bodyOf(resp)), &body) != nil || body.Error != "rate_limited" || body.Description == "" {
		t.Fatalf("got %d %s, want 429 with {\"error\":\"rate_limited\",…}", resp.StatusCode, bodyOf(resp))
	}
	ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || ra < minWait || ra > maxWait {
		t.Fatalf("Retry-After %q, want whole seconds in [%d, %d]", resp.Header.Get("Retry-After"), minWait, maxWait)
	}
	if resp.Header.Get("WWW-Authenticate") != "" {
		t.Fatal("a rate-limit refusal challenges for a token: the sender's token was fine")
	}
}

// TestRouteRateLimitCountsVerifiedClientIDs: each verified client id has
// its own bucket; past it 429 with Retry-After and nothing forwarded;
// refused tokens and identity headers the client wrote count for nothing.
func TestRouteRateLimitCountsVerifiedClientIDs(t *testing.T) {
	e := newLimitedEnv(t)
	// Invalid tokens naming client A are refused before the limit: they
	// do not spend A's bucket.
	for range 5 {
		if resp := e.do(http.MethodPost, "/hooks/by-client", "{}", bearer("not.a.token")...); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("invalid token: %d", resp.StatusCode)
		}
	}
	for i := range 2 {
		// A header naming another client changes nothing.
		resp := e.do(http.MethodPost, "/hooks/by-client", "{}", append(bearer(e.tokenFor("client-a", "s")), "X-Auth-Client-Id", "other-"+strconv.Itoa(i))...)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d of client A's burst of 2: %d %s", i+1, resp.StatusCode, bodyOf(resp))
		}
	}
	before := len(e.up.requests())
	want429(t, e.do(http.MethodPost, "/hooks/by-client", "{}", append(bearer(e.tokenFor("client-a", "s")), "X-Auth-Client-Id", "fresh")...), 3000, 3600)
	if n := len(e.up.requests()); n != before {
		t.Fatal("a rate-limited request reached the upstream")
	}
	if resp := e.do(http.MethodPost, "/hooks/by-client", "{}", bearer(e.tokenFor("client-b", "s"))...); resp.StatusCode != http.StatusOK {
		t.Fatalf("client B limited by client A's bucket: %d", resp.StatusCode)
	}
	if n := e.obs.count("by-client"); n != 1 {
		t.Fatalf("observer counted %d rate-limited requests on by-client, want 1", n)
	}
	// subject: one bucket per verified sub, whatever the client id.
	if resp := e.do(http.MethodPost, "/hooks/by-subject", "{}", bearer(e.tokenFor("x", "sub-1"))...); resp.StatusCode != http.StatusOK {
		t.Fatalf("subject: first request %d", resp.StatusCode)
	}
	want429(t, e.do(http.MethodPost, "/hooks/by-subject", "{}", bearer(e.tokenFor("y", "sub-1"))...), 3000, 3600)
}

// TestRouteRateLimitByRemoteIPIgnoresForwardedFor: a client that is not
// a trusted proxy cannot name another address to get a new bucket.
func TestRouteRateLimitByRemoteIPIgnoresForwardedFor(t *testing.T) {
	e := newLimitedEnv(t)
	if resp := e.do(http.MethodGet, "/hooks/by-ip", "", "X-Forwarded-For", "203.0.113.1"); resp.StatusCode != http.StatusOK {
		t.Fatalf("first request %d", resp.StatusCode)
	}
	want429(t, e.do(http.MethodGet, "/hooks/by-ip", "", "X-Forwarded-For", "203.0.113.2", "X-Real-IP", "203.0.113.3"), 3000, 3600)
}

// TestRateLimitedSignedMessageIsReleased: a signed message refused by the
// route's rate limit is not forwarded and its replay claim is released:
// the sender's retry, once the bucket has a token again, is delivered,
// not answered 409 (in flight) or 200 duplicate.
func TestRateLimitedSignedMessageIsReleased(t *testing.T) {
	e := newLimitedEnv(t)
	send := func(body string) *http.Response {
		return e.do(http.MethodPost, "/hooks/signed", body, "X-Hub-Signature-256", githubSignature(body), "X-Github-Delivery", body)
	}
	if resp := send(`{"n":1}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("first message: %d %s", resp.StatusCode, bodyOf(resp))
	}
	want429(t, send(`{"n":2}`), 1, 1)
	if n := len(e.up.requests()); n != 1 {
		t.Fatalf("%d requests reached the upstream, want 1", n)
	}
	e.clock.add(1100 * time.Millisecond)
	resp := send(`{"n":2}`)
	if resp.StatusCode != http.StatusOK || bodyOf(resp) != "ok" {
		t.Fatalf("the retry of the rate-limited message: %d %s, want it delivered (the claim must be released)", resp.StatusCode, bodyOf(resp))
	}
	if n := len(e.up.requests()); n != 2 {
		t.Fatalf("%d requests reached the upstream, want 2", n)
	}
}

// TestRateLimitedQueuedRequestIsNeverStored: on a queued route the
// refusal comes before the queue: nothing is stored, nothing delivered.
func TestRateLimitedQueuedRequestIsNeverStored(t *testing.T) {
	store, err := queue.OpenFile(queue.FileOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	u, _ := url.Parse("http://127.0.0.1:1")
	q, err := queue.New(store, queue.Options{Routes: []queue.RouteOptions{{Name: "limited-queued"}}, Target: u})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvOpts(t, `  - name: limited-queued
    path: /hooks/limited-queued
    require: { issuers: [idp] }
    delivery: { mode: queued }
    rate_limit: { key: client_id, rate: 1/h, burst: 1 }
`, Options{Queue: q})
	tok := e.tokenFor("client-q", "s")
	if resp := e.do(http.MethodPost, "/hooks/limited-queued", "{}", bearer(tok)...); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("first message: %d %s", resp.StatusCode, bodyOf(resp))
	}
	want429(t, e.do(http.MethodPost, "/hooks/limited-queued", `{"n":2}`, bearer(tok)...), 3000, 3600)
	st, err := store.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].Pending != 1 {
		t.Fatalf("stored: %+v, want only the first message", st)
	}
}

// TestSenderKeysAreCanonical: the bucket key joins the issuer, the
// identity's claim and its value with length prefixes, so no identity
// spelled to contain a separator reaches another issuer's sender's bucket,
// and a subject never shares the bucket of an equal client id; IPv6
// counts by /64.
func TestSenderKeysAreCanonical(t *testing.T) {
	key := func(kind string, p *verifier.Principal, ip string) string {
		t.Helper()
		k, err := SenderKey(kind, p, ip)
		if err != nil {
			t.Fatalf("SenderKey(%s, %+v): %v", kind, p, err)
		}
		return k
	}
	a := key(config.RateKeyClientID, &verifier.Principal{Source: "idp", ClientID: "ab"}, "")
	b := key(config.RateKeyClientID, &verifier.Principal{Source: "idpa", ClientID: "b"}, "")
	if a == b {
		t.Fatal("issuer and client id joined without a length prefix")
	}
	bySub := key(config.RateKeyClientID, &verifier.Principal{Source: "idp", Subject: "x"}, "")
	byCid := key(config.RateKeyClientID, &verifier.Principal{Source: "idp", ClientID: "x"}, "")
	if bySub == byCid || bySub != key(config.RateKeySubject, &verifier.Principal{Source: "idp", Subject: "x", ClientID: "y"}, "") {
		t.Fatal("a subject and an equal client id share a bucket, or one subject has two")
	}
	if key(config.RateKeyRemoteIP, nil, "2001:db8::1") != key(config.RateKeyRemoteIP, nil, "2001:db8::2") {
		t.Fatal("two addresses of one /64 have two buckets")
	}
	if key(config.RateKeySignatureRoute, nil, "192.0.2.1") != "" {
		t.Fatal("signature_route depends on something besides the route")
	}
}

// TestRouteRateLimitNeverSharesOneBucketBetweenAnonymousTokens: a token
// without the route's key claim is counted by its other verified
// identity (no client id: its sub; no sub: its client id, also read from
// Entra ID v1's appid), so one sender spending its bucket never limits
// another; a token naming neither is refused 403
// rate_limit_identity_missing and never forwarded.
func TestRouteRateLimitNeverSharesOneBucketBetweenAnonymousTokens(t *testing.T) {
	e := newLimitedEnv(t)
	mint := func(kv ...string) string {
		c := e.idp.Claims(audience)
		delete(c, "client_id")
		delete(c, "sub")
		for i := 0; i+1 < len(kv); i += 2 {
			c[kv[i]] = kv[i+1]
		}
		c["jti"] = strconv.FormatInt(time.Now().UnixNano(), 10)
		return e.idp.Mint(c)
	}
	send := func(path, tok string) *http.Response {
		return e.do(http.MethodPost, path, "{}", bearer(tok)...)
	}
	cases := []struct {
		name  string
		path  string
		a, b  string // a spends its whole bucket; then b must pass
		burst int
	}{
		{"client_id route, tokens with only a sub", "/hooks/by-client", mint("sub", "alice"), mint("sub", "bob"), 2},
		{"client_id route, Entra ID v1 appid", "/hooks/by-client", mint("appid", "11111111-1111-1111-1111-111111111111"), mint("appid", "22222222-2222-2222-2222-222222222222"), 2},
		{"client_id route, a sub equal to another token's client id", "/hooks/by-client", mint("sub", "carol"), mint("client_id", "carol"), 2},
		{"subject route, tokens with only a client id", "/hooks/by-subject", mint("client_id", "dave"), mint("client_id", "erin"), 1},
	}
	for _, c := range cases {
		for i := range c.burst {
			if resp := send(c.path, c.a); resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: sender A's request %d of its burst: %d %s", c.name, i+1, resp.StatusCode, bodyOf(resp))
			}
		}
		want429(t, send(c.path, c.a), 3000, 3600)
		if resp := send(c.path, c.b); resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: sender B refused after sender A spent its bucket: %d %s (one bucket shared)", c.name, resp.StatusCode, bodyOf(resp))
		}
	}
	before := len(e.up.requests())
	for _, path := range []string{"/hooks/by-client", "/hooks/by-subject"} {
		resp := send(path, mint())
		var body struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if resp.StatusCode != http.StatusForbidden || json.Unmarshal([]byte(bodyOf(resp)), &body) != nil ||
			body.Error != "rate_limit_identity_missing" || body.Description != ErrNoSenderIdentity.Error() {
			t.Fatalf("%s, a token with neither client_id nor sub: %d %s, want 403 rate_limit_identity_missing", path, resp.StatusCode, bodyOf(resp))
		}
	}
	if n := len(e.up.requests()); n != before {
		t.Fatal("a token naming no sender reached the upstream")
	}
}
