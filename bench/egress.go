package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tokengate/tokengate/egress/egresstest"
)

// egressTokenTTL is the lifetime of the bench's egress tokens: short, so a
// round spans refreshes (at 80 %: every 1.6 s).
const egressTokenTTL = 2 * time.Second

// startWith writes the config config(pub, admin) returns, for two free
// ports, and starts tokengate with it.
func (e *env) startWith(name string, config func(pub, admin string) string) (*proc, error) {
	pub, admin := freePort(), freePort()
	path := filepath.Join(e.dir, name+".yaml")
	if err := os.WriteFile(path, []byte(config(pub, admin)), 0o600); err != nil {
		return nil, err
	}
	return startTokengateAt(e.bin, path, pub, admin)
}

// egress measures the calling side: the load generator is the app, sending
// plain requests to an egress listener that adds a token and forwards them
// to the sink (the same upstream the bare proxy forwards to). The token
// endpoint runs in this process and counts token requests.
func (e *env) egress() (row, error) {
	const secret = "bench-egress-secret-not-for-production"
	te := egresstest.NewTokenEndpoint("bench-egress", secret, egressTokenTTL)
	defer te.Close()
	secretFile := filepath.Join(e.dir, "egress-secret")
	if err := os.WriteFile(secretFile, []byte(secret), 0o600); err != nil {
		return row{}, err
	}
	p, err := e.startWith("egress", func(pub, admin string) string {
		return fmt.Sprintf(`admin_listen: %s
egress:
  - name: bench
    listen: %s
    upstream: %q
    insecure_http: true
    token: { url: %q, client_id: bench-egress, client_secret_file: %q, scopes: ["webhooks:write"] }
`, admin, pub, e.sink.URL, te.URL, secretFile)
	})
	if err != nil {
		return row{}, err
	}
	defer p.stop()
	req := func(int64) (request, bool) { return request{path: "/hooks/aftership"}, true }
	// One request before the clock: the first token is fetched on first
	// use, and the rounds are short enough that the requests queued behind
	// it would be most of what "waited" counts. Steady state is measured.
	c := client(1)
	first, _ := req(0)
	if res, _ := send(c, "http://"+p.addr, first); res.status != 200 {
		return row{}, fmt.Errorf("egress: first request answered %d", res.status)
	}
	c.CloseIdleConnections()
	waits0 := p.metric(`tokengate_egress_token_waits_total{egress="bench"}`)
	cpu0 := p.cpuSeconds()
	st := e.load("http://"+p.addr, e.o.conns, e.o.duration, req)
	r := e.fill("egress", st, p, cpu0)
	r.jwks, r.introspections = -1, -1
	alive := time.Since(p.started)
	r.tokenRequests = te.Count()
	r.tokenAllowance = 1 + int(math.Ceil(alive.Seconds()/(0.8*egressTokenTTL.Seconds())))
	r.waits = int(p.metric(`tokengate_egress_token_waits_total{egress="bench"}`) - waits0)
	r.note = strings.TrimPrefix(fmt.Sprintf("%s; %d token requests in %v with %v tokens (refresh every %v); %d requests waited for a token",
		r.note, r.tokenRequests, alive.Round(100*time.Millisecond), egressTokenTTL, time.Duration(0.8*float64(egressTokenTTL)), r.waits), "; ")
	return r, nil
}
