package proxy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/verifier"
)

// TestRouteIndexMatchesLinearScan compares the index with the definition
// (try every route in order) on generated route sets: hosts in several
// spellings (upper case, ports, U+212A KELVIN SIGN, which folds onto "k"),
// exact paths, prefixes, "/", methods, and routes that overlap so that
// configuration order decides.
func TestRouteIndexMatchesLinearScan(t *testing.T) {
	hosts := []string{"", "", "a.example", "A.example", "k.example", "\u212a.example", "b.example:8443", "ſ.example", "s.example"}
	segs := []string{"hooks", "a", "b", "Hooks", "x.y", ""}
	methods := [][]string{nil, nil, {"POST"}, {"GET", "POST"}, {"PUT"}}
	randPath := func(r *rand.Rand) string {
		var b strings.Builder
		for range r.IntN(4) {
			b.WriteString("/" + segs[r.IntN(len(segs))])
		}
		if b.Len() == 0 || r.IntN(4) == 0 {
			b.WriteString("/")
		}
		return b.String()
	}
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 7))
		cfg := &config.Config{}
		for range 1 + r.IntN(40) {
			rt := config.Route{Host: hosts[r.IntN(len(hosts))], Methods: methods[r.IntN(len(methods))]}
			switch p := randPath(r); r.IntN(5) {
			case 0:
				rt.Path = p
			case 1:
				rt.PathPrefix = "/"
			case 2: // neither: every path (config validation refuses it; the matcher still agrees)
			default:
				rt.PathPrefix = p
			}
			cfg.Routes = append(cfg.Routes, rt)
		}
		routes := compileRoutes(cfg)
		for range 200 {
			method := []string{"GET", "POST", "PUT", "post"}[r.IntN(4)]
			host := hosts[r.IntN(len(hosts))]
			if host == "" || r.IntN(3) == 0 {
				host = []string{"A.EXAMPLE", "a.example:443", "K.example", "[::1]:80", "s.example", "S.EXAMPLE:1"}[r.IntN(6)]
			}
			path := cleanPath(randPath(r))
			want, _ := matchLinear(routes, method, hostOnly(host), path)
			got, _ := routes[0].index.lookup(method, hostOnly(host), path)
			if got != want {
				t.Fatalf("seed %d: %s %s %s: index chose %s, the scan %s", seed, method, host, path, routeName(routes, got), routeName(routes, want))
			}
			if m := match(routes, method, host, path); m != want {
				t.Fatalf("seed %d: %s %s %s: match chose %s, the scan %s", seed, method, host, path, routeName(routes, m), routeName(routes, want))
			}
		}
	}
}

func routeName(routes []*route, r *route) string {
	for i, x := range routes {
		if x == r {
			return fmt.Sprintf("#%d (host %q exact %q prefix %q methods %v)", i, x.host, x.exact, x.prefix, x.methods)
		}
	}
	return "none"
}

// TestRoutePrecedence states the rules the index keeps, one case each.
func TestRoutePrecedence(t *testing.T) {
	routes := []config.Route{
		{PathPrefix: "/hooks", Methods: []string{"PUT"}},         // 0
		{Host: "A.example", PathPrefix: "/hooks/a"},              // 1
		{PathPrefix: "/hooks/a/deep"},                            // 2: after 1, so only other hosts get it
		{Path: "/hooks/b"},                                       // 3
		{PathPrefix: "/hooks/b"},                                 // 4
		{PathPrefix: "/hooks/c/", Methods: []string{"POST"}},     // 5: trailing slash trimmed
		{Host: "k.example", Path: "/kelvin"},                     // 6
		{PathPrefix: "/"},                                        // 7
		{Host: "late.example", PathPrefix: "/hooks/late"},        // 8: never reached, 7 takes all
		{PathPrefix: "/hooks/pad1"}, {PathPrefix: "/hooks/pad2"}, // padding past linearRoutes
		{PathPrefix: "/hooks/pad3"}, {PathPrefix: "/hooks/pad4"},
	}
	cases := []struct {
		method, host, path string
		want               int
	}{
		{"PUT", "a.example", "/hooks/a/deep/x", 0},       // the first route wins, however short its prefix
		{"POST", "a.example:8080", "/hooks/a/deep/x", 1}, // host compared without port, case-insensitively
		{"POST", "other", "/hooks/a/deep/x", 2},
		{"POST", "other", "/hooks/a/deeper", 7}, // prefixes match whole segments only
		{"POST", "x", "/hooks/b", 3},
		{"POST", "x", "/hooks/b/", 4},
		{"POST", "x", "/hooks/c", 5},
		{"POST", "x", "/hooks/c/d", 5},
		{"GET", "x", "/hooks/c/d", 7}, // method not allowed: the next match
		{"GET", "late.example", "/hooks/late", 7},
		{"GET", "\u212a.example", "/kelvin", 6}, // Unicode case folding, as strings.EqualFold
		{"GET", "K.EXAMPLE", "/kelvin", 6},
		{"GET", "other", "/kelvin", 7},
	}
	compiled := compileRoutes(&config.Config{Routes: routes})
	for _, c := range cases {
		got, _ := matchCounting(compiled, c.method, c.host, cleanPath(c.path))
		if got != compiled[c.want] {
			t.Errorf("%s %s %s: got %s, want #%d", c.method, c.host, c.path, routeName(compiled, got), c.want)
		}
	}
}

// manyRoutes is a configuration of n prefix routes, /hooks/r<i>, each
// requiring its own scope, then a catch-all.
func manyRoutes(n int) string {
	var b strings.Builder
	b.WriteString("routes:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - { path_prefix: /hooks/r%d, methods: [POST], require: { scopes: [s%d] } }\n", i, i)
	}
	return b.String()
}

// TestTenThousandRoutesTryFewCandidates: a request for the last of 10,000
// routes is decided after trying a handful of them, not all that come
// before it; the real handler behind a real server sends it to the right
// route (its scope admits, another route's scope does not).
func TestTenThousandRoutesTryFewCandidates(t *testing.T) {
	const n = 10_000
	cfg, err := config.Parse([]byte("upstream: "+newUpstreamURL(t)+"\nissuers: [{name: idp, issuer: 'https://idp/', audiences: [a]}]\n"+manyRoutes(n)), t.TempDir(), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	routes := compileRoutes(cfg)
	for _, p := range []string{"/hooks/r9999", "/hooks/r9999/x/y", "/hooks/r0", "/hooks/r5000/"} {
		r, tried := matchCounting(routes, http.MethodPost, "gate.example", cleanPath(p))
		if want, _ := matchLinear(routes, http.MethodPost, "gate.example", cleanPath(p)); r != want || r == nil {
			t.Fatalf("%s: got %s, want %s", p, routeName(routes, r), routeName(routes, want))
		}
		if tried > 2 {
			t.Errorf("%s: tried %d routes to find %q; want at most 2", p, tried, r.name)
		}
	}
	if _, tried := matchCounting(routes, http.MethodPost, "gate.example", "/elsewhere"); tried > 0 {
		t.Errorf("an unrouted path tried %d routes; want 0", tried)
	}

	scope := "s9999"
	cache, err := verifier.NewCache(verifier.Func(func(_ context.Context, tok string) (*verifier.Principal, error) {
		return &verifier.Principal{Source: "idp", Subject: "sender", Scopes: []string{tok}, Expiry: time.Now().Add(time.Hour)}, nil
	}), verifier.CacheOptions{MaxEntries: 10, MaxTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(cfg, cache, Options{})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(h)
	defer front.Close()
	for _, c := range []struct {
		path, scope string
		want        int
	}{{"/hooks/r9999/orders", scope, 200}, {"/hooks/r9999/orders", "s9998", 403}, {"/hooks/r9998", "s9998", 200}, {"/nowhere", scope, 404}} {
		req, _ := http.NewRequest(http.MethodPost, front.URL+c.path, strings.NewReader("{}"))
		req.Header.Set("Authorization", "Bearer "+c.scope) // the test verifier grants the token's text as its scope
		resp, err := front.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s with scope %s: status %d, want %d", c.path, c.scope, resp.StatusCode, c.want)
		}
	}
}

// newUpstreamURL starts a real upstream for the test and returns its URL.
func newUpstreamURL(t *testing.T) string {
	u := newUpstream()
	t.Cleanup(u.Close)
	return u.URL
}

// TestClaimNamesAreThoseRoutesAndHeadersRead: the list verifiers are told
// to keep.
func TestClaimNamesAreThoseRoutesAndHeadersRead(t *testing.T) {
	cfg := &config.Config{Routes: []config.Route{{Require: config.Require{Claims: map[string]string{"tenant": "acme", "env": "prod"}}}, {}}}
	cfg.Headers.Claims = map[string]string{"tenant": "Tenant", "region": "Region"}
	if got := ClaimNames(cfg); !slices.Equal(got, []string{"env", "region", "tenant"}) {
		t.Fatalf("ClaimNames = %q", got)
	}
	if got := ClaimNames(&config.Config{}); got == nil || len(got) != 0 {
		t.Fatalf("no claims used: %#v, want an empty, non-nil list (nil would keep every claim)", got)
	}
}
