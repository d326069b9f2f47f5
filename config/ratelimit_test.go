package config

import (
	"strings"
	"testing"
	"time"
)

const rateBase = `upstream: http://127.0.0.1:9000
issuers:
  - { name: idp, issuer: "https://idp.example.com/", audiences: [hooks] }
routes:
`

// TestRouteRateLimitParses: each unit, and the limit kept on the route.
func TestRouteRateLimitParses(t *testing.T) {
	for _, c := range []struct {
		rate string
		want Rate
	}{
		{"100/s", Rate{100, time.Second}},
		{"5/m", Rate{5, time.Minute}},
		{" 1000/h ", Rate{1000, time.Hour}},
	} {
		y := rateBase + "  - { name: a, path: /a, rate_limit: { key: client_id, rate: \"" + c.rate + "\", burst: 3 } }\n"
		cfg, err := Parse([]byte(y), t.TempDir(), env())
		if err != nil {
			t.Fatalf("%s: %v", c.rate, err)
		}
		rl := cfg.Routes[0].RateLimit
		if rl.Rate != c.want || rl.Burst != 3 || rl.Key != RateKeyClientID {
			t.Fatalf("%s: got %+v", c.rate, rl)
		}
		if rl.Rate.String() != strings.TrimSpace(c.rate) {
			t.Fatalf("%s prints as %s", c.rate, rl.Rate)
		}
	}
}

// TestRouteRateLimitValidation: every mistake is reported with its path
// and what to write instead.
func TestRouteRateLimitValidation(t *testing.T) {
	sig := `signature: { scheme: github, secrets: ["${GH}"] }`
	for _, c := range []struct {
		name, route, path, want string
	}{
		{"bare number", `{ path: /a, rate_limit: { key: client_id, rate: 100, burst: 1 } }`, "routes[0].rate_limit.rate", "N/s, N/m or N/h"},
		{"per day", `{ path: /a, rate_limit: { key: client_id, rate: 100/d, burst: 1 } }`, "routes[0].rate_limit.rate", "N/s, N/m or N/h"},
		{"fraction", `{ path: /a, rate_limit: { key: client_id, rate: 0.5/s, burst: 1 } }`, "routes[0].rate_limit.rate", "whole number"},
		{"zero rate", `{ path: /a, rate_limit: { key: client_id, rate: 0/s, burst: 1 } }`, "routes[0].rate_limit.rate", "at least 1"},
		{"no rate", `{ path: /a, rate_limit: { key: client_id, burst: 1 } }`, "routes[0].rate_limit.rate", "required"},
		{"no burst", `{ path: /a, rate_limit: { key: client_id, rate: 1/s } }`, "routes[0].rate_limit.burst", "at least 1"},
		{"negative burst", `{ path: /a, rate_limit: { key: client_id, rate: 1/s, burst: -2 } }`, "routes[0].rate_limit.burst", "at least 1"},
		{"no key", `{ path: /a, rate_limit: { rate: 1/s, burst: 1 } }`, "routes[0].rate_limit.key", "required: one of client_id"},
		{"typo key", `{ path: /a, rate_limit: { key: clientid, rate: 1/s, burst: 1 } }`, "routes[0].rate_limit.key", `did you mean "client_id"`},
		{"header key", `{ path: /a, rate_limit: { key: X-Client, rate: 1/s, burst: 1 } }`, "routes[0].rate_limit.key", "must be one of"},
		{"unknown field", `{ path: /a, rate_limit: { key: client_id, rate: 1/s, burst: 1, per: ip } }`, "routes[0].rate_limit.per", "unknown field"},
		{"client_id on signed", `{ path: /a, ` + sig + `, rate_limit: { key: client_id, rate: 1/s, burst: 1 } }`, "routes[0].rate_limit.key", "use signature_route or remote_ip"},
		{"subject on any", `{ path: /a, auth: any, ` + sig + `, rate_limit: { key: subject, rate: 1/s, burst: 1 } }`, "routes[0].rate_limit.key", "verified bearer token"},
		{"client_id on public", `{ path: /a, public: true, rate_limit: { key: client_id, rate: 1/s, burst: 1 } }`, "routes[0].rate_limit.key", "verified bearer token"},
		{"signature_route on bearer", `{ path: /a, rate_limit: { key: signature_route, rate: 1/s, burst: 1 } }`, "routes[0].rate_limit.key", "signed"},
		{"signature_route on any", `{ path: /a, auth: any, ` + sig + `, rate_limit: { key: signature_route, rate: 1/s, burst: 1 } }`, "routes[0].rate_limit.key", "signed"},
		{"same name", "{ name: x, path: /a, rate_limit: { key: remote_ip, rate: 1/s, burst: 1 } }\n  - { name: x, path: /b, rate_limit: { key: remote_ip, rate: 1/s, burst: 1 } }", "routes[1].name", "buckets are kept per route name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(rateBase+"  - "+c.route+"\n"), t.TempDir(), env("GH", "s"))
			if err == nil || !strings.Contains(err.Error(), c.path+": ") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v\nwant %s: …%s…", err, c.path, c.want)
			}
		})
	}
}

// TestRouteRateLimitKeysEachRouteCanProduce: the keys accepted per kind
// of route.
func TestRouteRateLimitKeysEachRouteCanProduce(t *testing.T) {
	sig := `signature: { scheme: github, secrets: ["${GH}"] }`
	for _, route := range []string{
		`{ path: /a, rate_limit: { key: client_id, rate: 1/s, burst: 1 } }`,
		`{ path: /a, rate_limit: { key: subject, rate: 1/s, burst: 1 } }`,
		`{ path: /a, rate_limit: { key: remote_ip, rate: 1/s, burst: 1 } }`,
		`{ path: /a, public: true, rate_limit: { key: remote_ip, rate: 1/s, burst: 1 } }`,
		`{ path: /a, ` + sig + `, rate_limit: { key: signature_route, rate: 1/s, burst: 1 } }`,
		`{ path: /a, ` + sig + `, rate_limit: { key: remote_ip, rate: 1/s, burst: 1 } }`,
		`{ path: /a, auth: any, ` + sig + `, rate_limit: { key: remote_ip, rate: 1/s, burst: 1 } }`,
		`{ path: /a, auth: all, ` + sig + `, rate_limit: { key: client_id, rate: 1/s, burst: 1 } }`,
		`{ path: /a, auth: all, ` + sig + `, rate_limit: { key: signature_route, rate: 1/s, burst: 1 } }`,
	} {
		if _, err := Parse([]byte(rateBase+"  - "+route+"\n"), t.TempDir(), env("GH", "s")); err != nil {
			t.Errorf("%s: %v", route, err)
		}
	}
}
