package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tokengate/tokengate/verifier/verifiertest"
)

type options struct {
	duration   time.Duration
	conns      int
	delay      time.Duration
	smoke      bool
	only       string
	coldTokens int
	coldOpaque int
}

const (
	benchAud     = "https://hooks.example.com"
	benchSecret  = "bench-secret-not-for-production"
	partnerIss   = "https://partner.example"
	jwksCooldown = 30 * time.Second
	negativeTTL  = 10 * time.Second
)

// env is what every scenario shares: the sink, the identity providers, the
// tokengate binary.
type env struct {
	o      options
	dir    string
	bin    string
	sink   *httptest.Server
	idp    *verifiertest.IdP
	intro  *verifiertest.Introspector
	esKey  *verifiertest.Key
	secret string // bcrypt hash of benchSecret
}

// row is one line of the results table.
type row struct {
	name      string
	requests  int
	rps       float64
	p50, p99  time.Duration
	ratio     float64
	cpuPer10k float64
	peakRSSMB float64
	// identity-provider calls during the scenario; -1: not applicable
	jwks, introspections int
	distinct             int     // introspect-cold: distinct tokens sent
	entries, restRSSMB   float64 // jwt-cold: cache entries and RSS after the run
	wrong                int     // invalid-flood: wrong decisions
	// egress: token requests made, the most one per refresh allows, and
	// requests that had to wait for a token
	tokenRequests, tokenAllowance, waits int
	note                                 string
}

// idpCalls renders the identity-provider calls for the table.
func (r row) idpCalls() string {
	var parts []string
	if r.jwks >= 0 {
		parts = append(parts, fmt.Sprintf("jwks %d", r.jwks))
	}
	if r.introspections >= 0 {
		parts = append(parts, fmt.Sprintf("introspection %d", r.introspections))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func benchmark(ctx context.Context, o options, out string) error {
	e, err := newEnv(o)
	if err != nil {
		return err
	}
	defer e.close()
	fmt.Fprintf(os.Stderr, "bench: %d connections, %v per scenario, introspection delay %v\n", o.conns, o.duration, o.delay)
	var rows []row
	var bare row
	var check []string
	want := func(name string) bool { return o.only == "" || strings.Contains(name, o.only) || name == "bare" }
	add := func(r row, err error) error {
		if err != nil {
			return err
		}
		if bare.rps > 0 && r.rps > 0 && r.name != "bare" {
			r.ratio = r.rps / bare.rps
		}
		rows = append(rows, r)
		fmt.Fprintf(os.Stderr, "  %-22s %8.0f req/s  p50 %-9v p99 %-9v %s %s\n", r.name, r.rps, r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.idpCalls(), r.note)
		return ctx.Err()
	}
	if err := add(e.runBare()); err != nil {
		return err
	}
	bare = rows[0]
	bare.ratio = 1
	rows[0].ratio = 1
	scenarios := []struct {
		name string
		run  func() (row, error)
	}{
		{"jwt-hot", e.jwtHot},
		{"introspect-hot", e.introspectHot},
		{"jwt-cold-rs256", func() (row, error) { return e.jwtCold("jwt-cold-rs256", e.idp.Signer()) }},
		{"jwt-cold-es256", func() (row, error) { return e.jwtCold("jwt-cold-es256", e.esKey) }},
		{"introspect-cold", e.introspectCold},
		{"burst", e.burst},
		{"invalid-flood", e.invalidFlood},
		{"token-endpoint", e.tokenEndpoint},
		{"big-body", e.bigBody},
		{"egress", e.egress},
		{"signed-1k", func() (row, error) { return e.signed("signed-1k", false) }},
		{"signed-1k-redis", func() (row, error) { return e.signed("signed-1k-redis", true) }},
	}
	for _, s := range scenarios {
		if !want(s.name) {
			continue
		}
		r, err := s.run()
		if err := add(r, err); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		check = append(check, targets(rows[len(rows)-1], bare)...)
	}
	if err := add(e.runBare()); err != nil {
		return err
	}
	rows[len(rows)-1].name = "bare (again, at the end)"
	rows[len(rows)-1].ratio = rows[len(rows)-1].rps / bare.rps
	ready, idleRSS, err := e.idle()
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "  (micro-benchmarks: verification against the raw crypto floor, cache hit against SHA-256)")
	m, err := runMicro(o.smoke)
	if err != nil {
		return err
	}
	check = append(check, microTargets(m)...)
	byName := map[string]row{}
	for _, r := range rows {
		byName[r.name] = r
	}
	if hot, ok := byName["jwt-hot"]; ok {
		if big, ok := byName["big-body"]; ok {
			check = append(check, verdict(big.peakRSSMB <= hot.peakRSSMB+10, "big-body: peak RSS does not follow the body size (within 10 MB of jwt-hot)",
				fmt.Sprintf("%.1f MB with 50 MB bodies vs %.1f MB", big.peakRSSMB, hot.peakRSSMB)))
		}
	}
	check = append(check,
		verdict(idleRSS < 30, "idle RSS under 30 MB (embedded issuer)", fmt.Sprintf("%.1f MB", idleRSS)),
		verdict(ready < 200*time.Millisecond, "start to ready under 200 ms (embedded issuer)", ready.Round(time.Millisecond).String()))
	table := render(o, rows, check)
	fmt.Println(table)
	if out != "" && !o.smoke {
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(out, []byte(table), 0o644)
	}
	if o.smoke {
		fmt.Fprintln(os.Stderr, "bench: smoke mode: table not written (its figures mean nothing)")
	}
	return nil
}

func newEnv(o options) (*env, error) {
	dir, err := os.MkdirTemp("", "tokengate-bench-")
	if err != nil {
		return nil, err
	}
	e := &env{o: o, dir: dir, idp: verifiertest.New(), intro: verifiertest.NewIntrospector()}
	e.esKey = e.idp.Keys()[1]
	e.intro.SetDelay(o.delay)
	e.sink = httptest.NewServer(sink())
	if e.bin, err = buildTokengate(dir); err != nil {
		e.close()
		return nil, err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(benchSecret), bcrypt.DefaultCost)
	if err != nil {
		return nil, err
	}
	e.secret = string(h)
	return e, nil
}

func (e *env) close() {
	e.sink.Close()
	e.idp.Close()
	e.intro.Close()
	os.RemoveAll(e.dir)
}

// config writes a tokengate config with fresh ports. embeddedOnly leaves out
// the external identity providers (start-to-ready with the embedded issuer).
func (e *env) config(embeddedOnly bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %s\nadmin_listen: %s\n", freePort(), freePort())
	fmt.Fprintf(&b, "upstream: { url: %q, max_body_size: 100MiB, response_timeout: 60s }\n", e.sink.URL)
	if !embeddedOnly {
		fmt.Fprintf(&b, `issuers:
  - name: idp
    issuer: %q
    audiences: [%q]
    jwks_refresh_cooldown: %s
  - name: partner
    issuer: %q
    audiences: [%q]
    # Raised bounds: the cold-opaque scenario measures introspection
    # throughput, not the flood limit (default 16 in flight, 50/s).
    introspection: { url: %q, client_id: %q, client_secret: %q, timeout: 5s, max_concurrent: 256, rate_per_second: 1000000, burst: 1000000 }
cache: { max_entries: 200000, negative_ttl: %s }
`, e.idp.Issuer(), benchAud, jwksCooldown, partnerIss, benchAud, e.intro.URL(), e.intro.ClientID, e.intro.ClientSecret, negativeTTL)
	}
	fmt.Fprintf(&b, `token_endpoint:
  issuer: %q
  audience: %q
  rate_limit: { per_client: 1000000, per_client_burst: 1000000, per_ip: 1000000, per_ip_burst: 1000000 }
  clients:
    - client_id: bench
      client_secret_hash: %q
      scopes: ["webhooks:write"]
routes:
  - path_prefix: /hooks/scoped
    require: { scopes: ["webhooks:write"] }
  - path_prefix: /hooks
`, "http://bench.local", benchAud, e.secret)
	p := filepath.Join(e.dir, fmt.Sprintf("config-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		panic(err)
	}
	return p
}

// measure runs load against a fresh tokengate and fills a row.
func (e *env) measure(name string, embeddedOnly bool, conns int, d time.Duration, next func(i int64) (request, bool)) (row, *stats, *proc, error) {
	p, err := startTokengate(e.bin, e.config(embeddedOnly))
	if err != nil {
		return row{}, nil, nil, err
	}
	jwks0, intro0 := e.idp.JWKSFetches(), e.intro.Calls()
	cpu0 := p.cpuSeconds()
	st := load("http://"+p.addr, conns, d, next)
	r := e.fill(name, st, p, cpu0)
	r.jwks, r.introspections = int(e.idp.JWKSFetches()-jwks0), int(e.intro.Calls()-intro0)
	return r, st, p, nil
}

func (e *env) fill(name string, st *stats, p *proc, cpu0 float64) row {
	r := row{name: name, requests: st.count(), rps: st.rps(), p50: st.percentile(0.5, nil), p99: st.percentile(0.99, nil), jwks: -1, introspections: -1}
	if n := st.count(); n > 0 {
		r.cpuPer10k = (p.cpuSeconds() - cpu0) / float64(n) * 10000
	}
	r.peakRSSMB = float64(p.memKB("VmHWM")) / 1024
	if s := st.statuses(); len(s) > 1 || s[200] == 0 {
		r.note = fmt.Sprintf("statuses %v", s)
	}
	return r
}
