package main

import (
	"fmt"
	"io"
	"math"
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

// runBare puts the load a scenario put on tokengate (l) on the bare
// proxy: same requests, connections and time bound. Tokens and signatures
// are forwarded untouched.
func (e *env) runBare(l loadSpec) (row, error) {
	p, err := startBare(e.sink.URL)
	if err != nil {
		return row{}, err
	}
	defer p.stop()
	cpu0 := p.cpuSeconds()
	st := load("http://"+p.addr, l.conns, l.d, l.next)
	return e.fill("bare", st, p, cpu0), nil
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
// verifies a signature, until the n tokens (minted once, the same in every
// round: each round starts a new tokengate) are used or limit passes. The
// cache then holds them all: its entries and tokengate's RSS (now, and at
// its peak) are the cache-memory figures.
func (e *env) jwtCold(name string, k *verifiertest.Key, n int, limit time.Duration) (row, error) {
	toks := e.minted[name]
	if toks == nil {
		fmt.Fprintf(os.Stderr, "  (minting %d %s tokens)\n", n, k.Alg)
		toks = e.mintMany(k, n)
		e.minted[name] = toks
	}
	r, st, p, err := e.measure(name, false, e.o.conns, limit, func(i int64) (request, bool) {
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
	r.peakRSSMB = float64(p.memKB("VmHWM")) / 1024
	r.note = strings.TrimSpace(fmt.Sprintf("%s; %d tokens verified; cache %0.f entries, RSS %.1f MB after (peak %.1f MB)", r.note, st.count(), r.entries, r.restRSSMB, r.peakRSSMB))
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

// burst: 500 connections each send one request with one token tokengate
// has not seen, all at once.
func (e *env) burst() (row, error) {
	e.intro.Add("opaque-burst", verifiertest.ActiveClaims("webhooks:write", time.Hour))
	r, _, p, err := e.measure("burst", false, 500, time.Minute, func(i int64) (request, bool) {
		return request{path: "/hooks/partner", token: "opaque-burst"}, i < 500
	})
	if err != nil {
		return r, err
	}
	p.stop()
	r.jwks = -1
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
	// The start-up fetch, the refetch burst of 3, then at most one
	// fetch a second for as long as the process lived.
	r.jwksAllowance = 4 + int(math.Ceil(time.Since(p.started).Seconds()))
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

// tokenURLReturning: one client asks the embedded Token URL for tokens
// again and again with the right secret. One request before the clock
// starts pays bcrypt; the measured ones are recognised by the keyed hash
// of the secret that passed (requests that all arrive before the first
// bcrypt ends would each pay it: that is a first contact, not a return).
func (e *env) tokenURLReturning() (row, error) {
	p, err := startTokengate(e.bin, e.config(true))
	if err != nil {
		return row{}, err
	}
	defer p.stop()
	req := func(int64) (request, bool) {
		return request{path: "/oauth2/token", body: func() io.Reader { return strings.NewReader("grant_type=client_credentials") },
			contentType: "application/x-www-form-urlencoded", basic: [2]string{"bench", benchSecret}}, true
	}
	c := client(1)
	first, _ := req(0)
	if res, _ := send(c, "http://"+p.addr, first); res.status != 200 {
		return row{}, fmt.Errorf("token-url: first token request answered %d", res.status)
	}
	c.CloseIdleConnections()
	cpu0 := p.cpuSeconds()
	st := e.load("http://"+p.addr, e.o.conns, e.o.duration, req)
	r := e.fill("token-url returning client", st, p, cpu0)
	r.note = strings.TrimSpace(fmt.Sprintf("%s; tokens/s = req/s (one client: bcrypt cost %d once, before the clock, then the remembered secret)",
		r.note, bcrypt.DefaultCost))
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
