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
	rounds     int
	conns      int
	delay      time.Duration
	smoke      bool
	only       string
	rsTokens   int // jwt-cold-rs256: tokens minted (RSA signing is slow)
	coldTokens int // cache-100k
	bigTokens  int // cache-1m
	coldOpaque int
}

const (
	benchAud     = "https://hooks.example.com"
	benchSecret  = "bench-secret-not-for-production"
	partnerIss   = "https://partner.example"
	jwksCooldown = 30 * time.Second
	negativeTTL  = 10 * time.Second
	// benchMaxEntries is the cache bound of the bench config: room for
	// the 1M-token scenario (the default is 100,000). Its max_ttl is an
	// hour (default 5 minutes), so that the first of 1M tokens is still
	// cached when the last one arrives minutes later.
	benchMaxEntries = 1_100_000
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
	// minted are the cold scenarios' tokens, minted once for all rounds.
	minted map[string][]string
	// last is the load the latest scenario put on tokengate, for its bare
	// round.
	last loadSpec
}

// loadSpec is one closed-loop load: connections, time bound, requests.
type loadSpec struct {
	conns int
	d     time.Duration
	next  func(i int64) (request, bool)
}

// load runs a closed-loop load and remembers it, so that the bare proxy
// gets the same.
func (e *env) load(base string, conns int, d time.Duration, next func(i int64) (request, bool)) *stats {
	e.last = loadSpec{conns: conns, d: d, next: next}
	return load(base, conns, d, next)
}

// row is one line of the results table: one round, or the medians of a
// scenario's rounds (round.go).
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
	entries, restRSSMB   float64 // cold scenarios: cache entries and RSS after the run
	wrong                int     // invalid-flood: wrong decisions
	jwksAllowance        int     // invalid-flood: the most JWKS fetches the refetch policy allows
	// egress: token requests made, the most one per refresh allows, and
	// requests that had to wait for a token
	tokenRequests, tokenAllowance, waits int
	note                                 string
	// Set on a scenario's summary row: its bare rounds and the spread of
	// their req/s ((max-min)/median), the range of the per-round ratios,
	// and the rounds run.
	bare               bareSide
	ratioMin, ratioMax float64
	rounds             int
}

// bareSide is the bare proxy's side of a summary row: medians of its
// rounds, and the spread of its req/s between them.
type bareSide struct {
	rps, cpuPer10k, spread float64
	p99                    time.Duration
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

// scenario is one row of the table. optIn scenarios run only when -only
// names them.
type scenario struct {
	name  string
	run   func() (row, error)
	optIn bool
}

func benchmark(ctx context.Context, o options, out string) error {
	e, err := newEnv(o)
	if err != nil {
		return err
	}
	defer e.close()
	fmt.Fprintf(os.Stderr, "bench: %d connections, %d rounds of %v against the bare proxy per scenario, introspection delay %v\n", o.conns, o.rounds, o.duration, o.delay)
	scenarios := []scenario{
		{name: "jwt-hot", run: e.jwtHot},
		{name: "jwt-hot-traced", run: e.jwtHotTraced},
		{name: "introspect-hot", run: e.introspectHot},
		{name: "token-url returning client", run: e.tokenURLReturning},
		{name: "jwt-cold-rs256", run: func() (row, error) { return e.jwtCold("jwt-cold-rs256", e.idp.Signer(), o.rsTokens, o.duration) }},
		{name: "cache-100k", run: func() (row, error) { return e.jwtCold("cache-100k", e.esKey, o.coldTokens, 90*time.Second) }},
		{name: "cache-1m", optIn: true, run: func() (row, error) { return e.jwtCold("cache-1m", e.esKey, o.bigTokens, 8*time.Minute) }},
		{name: "introspect-cold", run: e.introspectCold},
		{name: "burst", run: e.burst},
		{name: "invalid-flood", run: e.invalidFlood},
		{name: "big-body", run: e.bigBody},
		{name: "egress", run: e.egress},
		{name: "signed-1k", run: func() (row, error) { return e.signed("signed-1k", false) }},
		{name: "signed-1k-redis", run: func() (row, error) { return e.signed("signed-1k-redis", true) }},
	}
	var rows []row
	var check []string
	for _, s := range scenarios {
		if o.only == "" && s.optIn || !strings.Contains(s.name, o.only) {
			continue
		}
		rounds := o.rounds
		if s.optIn {
			rounds = 1 // minutes per round: one, stated in its row
		}
		r, err := e.rounds(ctx, s.name, rounds, s.run)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		rows = append(rows, r)
		check = append(check, targets(r)...)
	}
	check = append(check, crossTargets(rows)...)
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
	e := &env{o: o, dir: dir, idp: verifiertest.New(), intro: verifiertest.NewIntrospector(), minted: map[string][]string{}}
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
cache: { max_entries: %d, max_ttl: 1h, negative_ttl: %s }
`, e.idp.Issuer(), benchAud, jwksCooldown, partnerIss, benchAud, e.intro.URL(), e.intro.ClientID, e.intro.ClientSecret, benchMaxEntries, negativeTTL)
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
	st := e.load("http://"+p.addr, conns, d, next)
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
