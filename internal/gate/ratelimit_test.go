package gate

import (
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tokengate/tokengate/signature/redistest"
	"github.com/tokengate/tokengate/verifier/verifiertest"
)

// measureFor lengthens TestRouteRateLimitSharedAcrossReplicas to measure
// the shared rate over a longer run (it prints configured vs measured):
//
//	go test ./internal/gate -run TestRouteRateLimitSharedAcrossReplicas -v -args -ratelimit.measure=20s
var measureFor = flag.Duration("ratelimit.measure", 3*time.Second, "how long TestRouteRateLimitSharedAcrossReplicas hammers the two replicas")

// replicaGate starts a gate on y plus a redis: block naming url.
func replicaGate(t *testing.T, y, redisURL string) string {
	t.Helper()
	g := startYAML(t, y+fmt.Sprintf("redis: { url: %q, timeout: 500ms }\n", redisURL))
	return "http://" + g.Addr()
}

// TestRouteRateLimitSharedAcrossReplicas: two gates sharing one
// redis-server, one sender hammering both alternately: together they
// accept about burst + rate × elapsed — one budget, not one per replica.
// The bounds are computed from the time measured here: never more than
// the budget of the whole run (+1 for the request in flight at each end),
// and at least 90% of what the sender could have had, not counting the
// tokens a busy machine let go to waste by pausing the sender for longer
// than the bucket takes to fill.
func TestRouteRateLimitSharedAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	idp := verifiertest.New()
	defer idp.Close()
	recv := newSignedReceiver(t)
	const rate, burst = 20, 10
	y := fmt.Sprintf(`listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream: %s
issuers: [{ name: idp, issuer: %s, audiences: [https://hooks.example.com] }]
routes:
  - name: aftership
    path: /hooks/aftership
    rate_limit: { key: client_id, rate: %d/s, burst: %d }
`, recv.URL, idp.Issuer(), rate, burst)
	gates := []string{replicaGate(t, y, srv.URL()), replicaGate(t, y, srv.URL())}
	tok := idp.Mint(idp.Claims("https://hooks.example.com"))
	h := http.Header{"Authorization": {"Bearer " + tok}}
	// Warm both gates (keys fetched, token cached) on another sender's
	// bucket, so the run measures the limit, not the first verification.
	other := idp.Claims("https://hooks.example.com")
	other["client_id"] = "warm-up"
	for _, g := range gates {
		if a := post(t, g+"/hooks/aftership", http.Header{"Authorization": {"Bearer " + idp.Mint(other)}}, "{}"); a.status != http.StatusOK {
			t.Fatalf("warm-up: %d %s", a.status, a.Desc)
		}
	}
	const maxRequests = 20000 // bounded whatever the machine's speed
	fill := time.Duration(burst) * time.Second / rate
	var accepted, refused, perGate [2]int
	var wasted time.Duration // pauses longer than the bucket takes to fill
	start := time.Now()
	last := start
	n := 0
	for ; n < maxRequests && time.Since(start) < *measureFor; n++ {
		if gap := time.Since(last); gap > fill {
			wasted += gap - fill
		}
		a := post(t, gates[n%2]+"/hooks/aftership", h, "{}")
		last = time.Now()
		time.Sleep(time.Millisecond) // leave the shared machine some CPU
		switch a.status {
		case http.StatusOK:
			accepted[0]++
			perGate[n%2]++
		case http.StatusTooManyRequests:
			refused[0]++
			if a.retryAfter != "1" || a.Error != "rate_limited" {
				t.Fatalf("429 with Retry-After %q error %q, want 1 and rate_limited", a.retryAfter, a.Error)
			}
		default:
			t.Fatalf("request %d: %d %s", n, a.status, a.Desc)
		}
	}
	elapsed := last.Sub(start)
	got := accepted[0]
	budget := burst + rate*elapsed.Seconds()
	upper := int(budget) + 1
	lower := int(0.9 * (burst + rate*(elapsed-wasted).Seconds()))
	measured := float64(got-burst) / elapsed.Seconds()
	t.Logf("configured %d/s burst %d across 2 replicas; %d requests in %v: %d accepted (%d + %d), %d refused; allowed burst + rate×elapsed = %.1f; measured rate (accepted − burst)/elapsed = %.2f/s (%.1f%% of configured)",
		rate, burst, n, elapsed.Round(time.Millisecond), got, perGate[0], perGate[1], refused[0], budget, measured, 100*measured/rate)
	if got > upper || got < lower {
		t.Fatalf("accepted %d, want within [%d, %d] (one budget for both replicas; two would be about %.0f)", got, lower, upper, 2*budget)
	}
	if refused[0] == 0 {
		t.Fatal("nothing refused: the sender never reached the limit")
	}
	if n := len(recv.received()); n != got+2 {
		t.Fatalf("the receiver got %d requests, want the %d accepted and 2 warm-ups", n, got)
	}
}

// tokenGateYAML is a gate whose Token URL has client "aftership" (secret
// "right-secret") and the given rate_limit block.
func tokenGateYAML(t *testing.T, limits string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("right-secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream: http://127.0.0.1:9
token_endpoint:
  issuer: http://localhost:8080
  rate_limit: %s
  clients:
    - { client_id: aftership, client_secret_hash: %q, scopes: [w] }
routes:
  - { path: /a, require: { scopes: [w] } }
`, limits, hash)
}

// tokenRequest asks gate for a token and returns the status and
// Retry-After.
func tokenRequest(t *testing.T, gate, clientID, secret string) (int, string) {
	t.Helper()
	resp, err := http.PostForm(gate+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// TestTokenURLBucketsSharedAcrossReplicas: with a redis: block, failed
// logins and requests counted by replica A count on replica B: per
// client id, per address's failures, and per address's requests. N
// replicas give a guesser the budget of one.
func TestTokenURLBucketsSharedAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	cases := []struct {
		name, limits string
		// what each attempt sends, alternately to A and B; the last one
		// must be 429 (its replica alone has seen less than the burst)
		ids, secrets []string
	}{
		{"per_client failures", "{ per_client: 0.001, per_client_burst: 2, per_ip: 1000, per_ip_burst: 1000, per_ip_failures: 1000, per_ip_failure_burst: 1000 }",
			[]string{"aftership", "aftership", "aftership"}, []string{"wrong", "wrong", "wrong"}},
		{"per_ip_failures", "{ per_client: 1000, per_client_burst: 1000, per_ip: 1000, per_ip_burst: 1000, per_ip_failures: 0.001, per_ip_failure_burst: 2 }",
			[]string{"guess-1", "guess-2", "aftership"}, []string{"x", "y", "wrong"}},
		{"per_ip", "{ per_client: 1000, per_client_burst: 1000, per_ip: 0.001, per_ip_burst: 2, per_ip_failures: 1000, per_ip_failure_burst: 1000 }",
			[]string{"aftership", "aftership", "aftership"}, []string{"right-secret", "right-secret", "right-secret"}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// A Redis database of its own per case: no bucket carries over.
			y := tokenGateYAML(t, c.limits)
			db := strings.TrimSuffix(srv.URL(), "/0") + fmt.Sprintf("/%d", i+1)
			a, b := replicaGate(t, y, db), replicaGate(t, y, db)
			for i := range len(c.ids) - 1 {
				g := []string{a, b}[i%2]
				if st, _ := tokenRequest(t, g, c.ids[i], c.secrets[i]); st == http.StatusTooManyRequests {
					t.Fatalf("attempt %d refused 429 before the shared burst was spent", i+1)
				}
			}
			last := len(c.ids) - 1
			st, ra := tokenRequest(t, []string{a, b}[last%2], c.ids[last], c.secrets[last])
			if st != http.StatusTooManyRequests || ra == "" || ra == "0" {
				t.Fatalf("after the burst was spent across both replicas: %d Retry-After %q, want 429 (each replica counting alone would allow it)", st, ra)
			}
		})
	}
}

// TestRedisDownRateLimitsCountInMemory: with the redis: block's server
// down, nothing authentic is refused for it: a route's sender within its
// limit is forwarded, a Token URL login with the right secret gets its
// token; the limits still hold, counted in this replica's memory; each
// such decision is counted in tokengate_rate_limit_redis_fallbacks_total.
func TestRedisDownRateLimitsCountInMemory(t *testing.T) {
	srv := redistest.Start(t)
	idp := verifiertest.New()
	defer idp.Close()
	recv := newSignedReceiver(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("right-secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	y := fmt.Sprintf(`listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream: %s
issuers: [{ name: idp, issuer: %s, audiences: [https://hooks.example.com] }]
token_endpoint:
  issuer: http://localhost:8080
  rate_limit: { per_client: 0.001, per_client_burst: 2 }
  clients:
    - { client_id: aftership, client_secret_hash: %q, scopes: [w] }
routes:
  - name: aftership
    path: /hooks/aftership
    require: { issuers: [idp] }
    rate_limit: { key: client_id, rate: 1/h, burst: 2 }
redis: { url: %q, timeout: 300ms }
`, recv.URL, idp.Issuer(), hash, srv.URL())
	g := startYAML(t, y)
	gate := "http://" + g.Addr()
	srv.Stop()
	h := http.Header{"Authorization": {"Bearer " + idp.Mint(idp.Claims("https://hooks.example.com"))}}
	for i := range 2 {
		if a := post(t, gate+"/hooks/aftership", h, "{}"); a.status != http.StatusOK {
			t.Fatalf("request %d within the limit, Redis down: %d %q, want forwarded", i+1, a.status, a.Desc)
		}
	}
	if a := post(t, gate+"/hooks/aftership", h, "{}"); a.status != http.StatusTooManyRequests {
		t.Fatalf("past the limit, Redis down: %d, want 429 counted in memory", a.status)
	}
	if st, _ := tokenRequest(t, gate, "aftership", "right-secret"); st != http.StatusOK {
		t.Fatalf("the right secret, Redis down: %d, want a token", st)
	}
	for range 2 {
		tokenRequest(t, gate, "aftership", "wrong")
	}
	if st, _ := tokenRequest(t, gate, "aftership", "wrong"); st != http.StatusTooManyRequests {
		t.Fatalf("guessing past per_client_burst, Redis down: %d, want 429 counted in memory", st)
	}
	m := get(t, "http://"+g.AdminAddr()+"/metrics")
	for _, want := range []string{
		`tokengate_rate_limit_redis_fallbacks_total{limiter="route:aftership"}`,
		`tokengate_rate_limit_redis_fallbacks_total{limiter="token_endpoint_per_client"}`,
		`tokengate_route_rate_limited_total{route="aftership"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, grep(m, "rate_limit"))
		}
	}
}
