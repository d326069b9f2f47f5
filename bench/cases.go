package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/tokengate/tokengate/verifier/verifiertest"
	"golang.org/x/crypto/bcrypt"
)

// The timed scenarios, one function each; scenarios.go runs them.

func (e *env) runBare() (row, error) {
	p, err := startBare(e.sink.URL)
	if err != nil {
		return row{}, err
	}
	defer p.stop()
	cpu0 := p.cpuSeconds()
	tok := e.idp.Mint(e.idp.Claims(benchAud, "webhooks:write"))
	st := load("http://"+p.addr, e.o.conns, e.o.duration, func(int64) (request, bool) {
		return request{path: "/hooks/aftership", token: tok}, true
	})
	r := e.fill("bare", st, p, cpu0)
	return r, nil
}

func (e *env) jwtHot() (row, error) {
	tok := e.idp.Mint(e.idp.Claims(benchAud, "webhooks:write"))
	r, _, p, err := e.measure("jwt-hot", false, e.o.conns, e.o.duration, func(int64) (request, bool) {
		return request{path: "/hooks/aftership", token: tok}, true
	})
	if p != nil {
		p.stop()
	}
	return r, err
}

func (e *env) introspectHot() (row, error) {
	e.intro.Add("opaque-hot", verifiertest.ActiveClaims("webhooks:write", time.Hour))
	r, _, p, err := e.measure("introspect-hot", false, e.o.conns, e.o.duration, func(int64) (request, bool) {
		return request{path: "/hooks/partner", token: "opaque-hot"}, true
	})
	if p != nil {
		p.stop()
	}
	return r, err
}

// mintMany signs n distinct tokens with k, on every core.
func (e *env) mintMany(k *verifiertest.Key, n int) []string {
	out := make([]string, n)
	var wg sync.WaitGroup
	workers := runtime.NumCPU()
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				c := e.idp.Claims(benchAud, "webhooks:write")
				c["jti"] = fmt.Sprintf("cold-%d", i)
				out[i] = verifiertest.Sign(k, c, nil)
			}
		})
	}
	wg.Wait()
	return out
}

// jwtCold: every request carries a token never seen before, so every one
// verifies a signature. Runs until the tokens are used up (at most 4× the
// scenario duration), so the cache ends up holding all of them.
func (e *env) jwtCold(name string, k *verifiertest.Key) (row, error) {
	fmt.Fprintf(os.Stderr, "  (minting %d %s tokens)\n", e.o.coldTokens, k.Alg)
	toks := e.mintMany(k, e.o.coldTokens)
	r, st, p, err := e.measure(name, false, e.o.conns, 4*e.o.duration, func(i int64) (request, bool) {
		if i >= int64(len(toks)) {
			return request{}, false
		}
		return request{path: "/hooks/aftership", token: toks[i]}, true
	})
	if err != nil {
		return r, err
	}
	defer p.stop()
	r.entries, r.restRSSMB = p.metric("tokengate_cache_entries"), float64(p.memKB("VmRSS"))/1024
	r.note = strings.TrimSpace(fmt.Sprintf("%s; %d tokens verified; cache %0.f entries, RSS %.1f MB", r.note, st.count(), r.entries, r.restRSSMB))
	return r, nil
}

func (e *env) introspectCold() (row, error) {
	n := e.o.coldOpaque
	var seq []string
	for i := range n {
		tok := fmt.Sprintf("opaque-cold-%d", i)
		e.intro.Add(tok, verifiertest.ActiveClaims("webhooks:write", time.Hour))
		for range 10 {
			seq = append(seq, tok)
		}
	}
	rand.Shuffle(len(seq), func(i, j int) { seq[i], seq[j] = seq[j], seq[i] })
	r, st, p, err := e.measure("introspect-cold", false, e.o.conns, 4*e.o.duration, func(i int64) (request, bool) {
		if i >= int64(len(seq)) {
			return request{}, false
		}
		return request{path: "/hooks/partner", token: seq[i]}, true
	})
	if err != nil {
		return r, err
	}
	p.stop()
	used := map[string]bool{}
	for i := 0; i < st.count() && i < len(seq); i++ {
		used[seq[i]] = true
	}
	r.distinct = len(used)
	r.note = strings.TrimSpace(fmt.Sprintf("%s; %d distinct tokens sent", r.note, r.distinct))
	return r, nil
}

// burst: 500 concurrent requests with one token tokengate has not seen.
func (e *env) burst() (row, error) {
	p, err := startTokengate(e.bin, e.config(false))
	if err != nil {
		return row{}, err
	}
	defer p.stop()
	e.intro.Add("opaque-burst", verifiertest.ActiveClaims("webhooks:write", time.Hour))
	calls0 := e.intro.Calls()
	cpu0 := p.cpuSeconds()
	c := client(500)
	defer c.Transport.(interface{ CloseIdleConnections() }).CloseIdleConnections()
	gate := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	st := &stats{}
	start := time.Now()
	for range 500 {
		wg.Go(func() {
			<-gate
			r, _ := send(c, "http://"+p.addr, request{path: "/hooks/partner", token: "opaque-burst"})
			mu.Lock()
			st.results = append(st.results, r)
			mu.Unlock()
		})
	}
	close(gate)
	wg.Wait()
	st.elapsed = time.Since(start)
	r := e.fill("burst", st, p, cpu0)
	r.introspections = int(e.intro.Calls() - calls0)
	return r, nil
}

// Request classes of invalid-flood.
const (
	classValid = iota
	classGarbage
	classBadSig
	classUnknownKid
	classUnknownOpaque
)

func (e *env) invalidFlood() (row, error) {
	valid := e.idp.Mint(e.idp.Claims(benchAud, "webhooks:write"))
	forged := *e.idp.Signer()
	forged.Private = verifiertest.NewKey(jose.RS256).Private // same kid, wrong key
	badSig := verifiertest.Sign(&forged, e.idp.Claims(benchAud, "webhooks:write"), nil)
	var unknownKid, garbage, opaque []string
	for i := range 100 {
		c := e.idp.Claims(benchAud, "webhooks:write")
		c["jti"] = fmt.Sprint(i)
		unknownKid = append(unknownKid, verifiertest.Sign(verifiertest.NewKeyFast(), c, nil))
		garbage = append(garbage, fmt.Sprintf("garbage.%d.%x", i, rand.Uint64()))
		opaque = append(opaque, fmt.Sprintf("opaque-unknown-%d", i))
	}
	r, st, p, err := e.measure("invalid-flood", false, e.o.conns, e.o.duration, func(i int64) (request, bool) {
		switch i % 8 {
		case 1:
			return request{path: "/hooks/x", token: garbage[i/8%100], class: classGarbage}, true
		case 3:
			return request{path: "/hooks/x", token: badSig, class: classBadSig}, true
		case 5:
			return request{path: "/hooks/x", token: unknownKid[i/8%100], class: classUnknownKid}, true
		case 7:
			return request{path: "/hooks/x", token: opaque[i/8%100], class: classUnknownOpaque}, true
		default:
			return request{path: "/hooks/x", token: valid, class: classValid}, true
		}
	})
	if err != nil {
		return r, err
	}
	p.stop()
	isValid := func(x result) bool { return x.class == classValid }
	for _, x := range st.results {
		if (x.class == classValid) != (x.status == 200) {
			r.wrong++
		}
	}
	r.note = fmt.Sprintf("valid only: p50 %v p99 %v; wrong decisions %d; statuses %v",
		st.percentile(0.5, isValid).Round(time.Microsecond), st.percentile(0.99, isValid).Round(time.Microsecond), r.wrong, st.statuses())
	return r, nil
}

func (e *env) tokenEndpoint() (row, error) {
	r, _, p, err := e.measure("token-endpoint", true, 4, e.o.duration, func(int64) (request, bool) {
		return request{path: "/oauth2/token", body: func() io.Reader { return strings.NewReader("grant_type=client_credentials") },
			contentType: "application/x-www-form-urlencoded", basic: [2]string{"bench", benchSecret}}, true
	})
	if err != nil {
		return r, err
	}
	defer p.stop()
	r.note = strings.TrimSpace(fmt.Sprintf("%s; tokens/s = req/s (bcrypt cost %d, 2 hash checks at once); start→ready %v, idle RSS before load measured separately",
		r.note, bcrypt.DefaultCost, p.ready.Round(time.Millisecond)))
	r.jwks, r.introspections = -1, -1
	return r, nil
}

// idle starts tokengate on the embedded issuer only and reports start to
// ready and RSS at rest.
func (e *env) idle() (time.Duration, float64, error) {
	p, err := startTokengate(e.bin, e.config(true))
	if err != nil {
		return 0, 0, err
	}
	defer p.stop()
	time.Sleep(500 * time.Millisecond)
	return p.ready, float64(p.memKB("VmRSS")) / 1024, nil
}

// bigBody streams 50 MB bodies; tokengate's memory must not follow.
func (e *env) bigBody() (row, error) {
	size := int64(50 << 20)
	if e.o.smoke {
		size = 5 << 20
	}
	tok := e.idp.Mint(e.idp.Claims(benchAud, "webhooks:write"))
	r, st, p, err := e.measure("big-body", false, 4, e.o.duration, func(int64) (request, bool) {
		return request{path: "/hooks/aftership", token: tok, body: func() io.Reader { return io.LimitReader(zeros{}, size) },
			contentType: "application/octet-stream"}, true
	})
	if err != nil {
		return r, err
	}
	p.stop()
	mb := float64(st.count()) * float64(size) / (1 << 20)
	r.note = strings.TrimSpace(fmt.Sprintf("%s; %d bodies of %d MB, %.0f MB/s", r.note, st.count(), size>>20, mb/st.elapsed.Seconds()))
	return r, nil
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
