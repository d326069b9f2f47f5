package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokengate/tokengate/verifier/verifiertest"
)

// Soak request classes and the answer each must get.
const (
	soakValidJWT = iota
	soakValidOpaque
	soakExpired
	soakGarbage
	soakBadSig
	soakUnknownKid
	soakNoScope
	soakInactive
	soakClasses
)

var soakWant = [soakClasses]int{200, 200, 401, 401, 401, 401, 403, 401}

// soak runs tokengate for d under mixed valid and invalid traffic while the
// identity provider rotates its keys every period (pre-publishing the next
// key, as real providers do), and reports wrong decisions, 5xx on valid
// tokens, and RSS and goroutines at start and end.
func soak(ctx context.Context, d time.Duration, conns int, period time.Duration) error {
	o := options{delay: 2 * time.Millisecond}
	e, err := newEnv(o)
	if err != nil {
		return err
	}
	defer e.close()
	// The first signer is RS256; rotations bring ES256 keys.
	pending := verifiertest.NewKeyFast()
	e.idp.Publish(pending)
	cfg := e.config(false)
	b, _ := os.ReadFile(cfg)
	// Keys older than 20 s are refetched, well inside the pre-publication
	// lead of one rotation period.
	b = []byte(strings.Replace(string(b), "    jwks_refresh_cooldown: 30s\n", "    jwks_refresh_cooldown: 30s\n    jwks_refresh_interval: 20s\n", 1))
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		return err
	}
	p, err := startTokengate(e.bin, cfg)
	if err != nil {
		return err
	}
	defer p.stop()

	// Token pools, refreshed by a background minter.
	var pool atomic.Pointer[soakPool]
	mint := func() {
		sp := &soakPool{}
		signer := e.idp.Signer()
		for i := range 64 {
			c := e.idp.Claims(benchAud, "webhooks:write")
			c["jti"] = fmt.Sprintf("%d-%d", time.Now().UnixNano(), i)
			sp.valid = append(sp.valid, verifiertest.Sign(signer, c, nil))
		}
		exp := e.idp.Claims(benchAud, "webhooks:write")
		exp["exp"] = time.Now().Add(-time.Hour).Unix()
		sp.expired = verifiertest.Sign(signer, exp, nil)
		forged := *signer
		forged.Private = verifiertest.NewKeyFast().Private
		if signer.Alg == jose.RS256 {
			forged.Private = verifiertest.NewKey(jose.RS256).Private
		}
		sp.badSig = verifiertest.Sign(&forged, e.idp.Claims(benchAud, "webhooks:write"), nil)
		sp.unknownKid = verifiertest.Sign(verifiertest.NewKeyFast(), e.idp.Claims(benchAud, "webhooks:write"), nil)
		sp.noScope = verifiertest.Sign(signer, e.idp.Claims(benchAud, "read"), nil)
		pool.Store(sp)
	}
	mint()
	var opaque, inactive []string
	for i := range 100 {
		t := fmt.Sprintf("soak-opaque-%d", i)
		e.intro.Add(t, verifiertest.ActiveClaims("webhooks:write", 24*time.Hour))
		opaque = append(opaque, t)
		inactive = append(inactive, fmt.Sprintf("soak-inactive-%d", i))
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	// Minter and rotator.
	wg.Go(func() {
		mintTick, rotTick := time.NewTicker(2*time.Second), time.NewTicker(period)
		defer mintTick.Stop()
		defer rotTick.Stop()
		var previous *verifiertest.Key
		for {
			select {
			case <-ctx.Done():
				return
			case <-mintTick.C:
				mint()
			case <-rotTick.C:
				old := e.idp.Signer()
				e.idp.UseSigner(pending) // published one period ago
				pending = verifiertest.NewKeyFast()
				e.idp.Publish(pending)
				if previous != nil {
					e.idp.Retire(previous) // two generations old
				}
				previous = old
				mint()
			}
		}
	})
	var (
		served, wrong, valid5xx, errs atomic.Int64
		perClass                      [soakClasses]atomic.Int64
	)
	c := client(conns)
	base := "http://" + p.addr
	for w := range conns {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for ctx.Err() == nil {
				sp := pool.Load()
				class := rng.IntN(soakClasses)
				q := request{path: "/hooks/soak", class: class}
				switch class {
				case soakValidJWT:
					q.token = sp.valid[rng.IntN(len(sp.valid))]
				case soakValidOpaque:
					q.token = opaque[rng.IntN(len(opaque))]
				case soakExpired:
					q.token = sp.expired
				case soakGarbage:
					q.token = fmt.Sprintf("garbage-%d", rng.IntN(50))
				case soakBadSig:
					q.token = sp.badSig
				case soakUnknownKid:
					q.token = sp.unknownKid
				case soakNoScope:
					q.token, q.path = sp.noScope, "/hooks/scoped"
				case soakInactive:
					q.token = inactive[rng.IntN(len(inactive))]
				}
				r, _ := send(c, base, q)
				if r.err {
					if ctx.Err() == nil {
						errs.Add(1)
					}
					continue
				}
				served.Add(1)
				perClass[class].Add(1)
				if r.status >= 500 && (class == soakValidJWT || class == soakValidOpaque) {
					valid5xx.Add(1)
				} else if r.status != soakWant[class] && !(class == soakUnknownKid && r.status == 503) {
					// An unknown kid may be a key published a moment ago:
					// 503 (retry) once the refetch bucket is empty is right.
					wrong.Add(1)
					if wrong.Load() <= 5 {
						fmt.Fprintf(os.Stderr, "soak: wrong decision: class %d got %d, want %d\n", class, r.status, soakWant[class])
					}
				}
			}
		})
	}
	start := time.Now()
	type sample struct {
		rss        float64
		goroutines float64
	}
	take := func() sample {
		return sample{float64(p.memKB("VmRSS")) / 1024, p.metric("go_goroutines")}
	}
	var first, last sample
	minS, maxS := sample{1e9, 1e9}, sample{}
	report := time.NewTicker(30 * time.Second)
	defer report.Stop()
	warm := time.After(min(30*time.Second, d/4))
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-warm:
			first = take()
			minS, maxS = first, first
		case <-report.C:
			s := take()
			minS.rss, maxS.rss = min(minS.rss, s.rss), max(maxS.rss, s.rss)
			minS.goroutines, maxS.goroutines = min(minS.goroutines, s.goroutines), max(maxS.goroutines, s.goroutines)
			fmt.Fprintf(os.Stderr, "soak %6s: %d requests (%.0f/s), wrong %d, 5xx on valid %d, RSS %.1f MB, goroutines %.0f\n",
				time.Since(start).Round(time.Second), served.Load(), float64(served.Load())/time.Since(start).Seconds(), wrong.Load(), valid5xx.Load(), s.rss, s.goroutines)
		}
	}
	last = take()
	wg.Wait()
	c.Transport.(interface{ CloseIdleConnections() }).CloseIdleConnections()
	fmt.Printf("\n## soak: %v, %d connections, key rotation every %v\n\n", d, conns, period)
	fmt.Printf("requests served:            %d (%.0f/s); transport errors %d\n", served.Load(), float64(served.Load())/time.Since(start).Seconds(), errs.Load())
	fmt.Printf("per class (valid JWT, valid opaque, expired, garbage, bad signature, unknown kid, no scope, inactive): ")
	for i := range perClass {
		fmt.Printf("%d ", perClass[i].Load())
	}
	fmt.Printf("\nwrong decisions:            %d (must be 0)\n", wrong.Load())
	fmt.Printf("5xx on valid tokens:        %d (must be 0)\n", valid5xx.Load())
	fmt.Printf("RSS MB, after warm-up → end: %.1f → %.1f (min %.1f, max %.1f over the run)\n", first.rss, last.rss, minS.rss, maxS.rss)
	fmt.Printf("goroutines, after warm-up → end: %.0f → %.0f (min %.0f, max %.0f)\n", first.goroutines, last.goroutines, minS.goroutines, maxS.goroutines)
	fmt.Printf("identity provider: %d JWKS fetches, %d introspection calls\n", e.idp.JWKSFetches(), e.intro.Calls())
	if wrong.Load() != 0 || valid5xx.Load() != 0 {
		return fmt.Errorf("soak failed: %d wrong decisions, %d 5xx on valid tokens", wrong.Load(), valid5xx.Load())
	}
	return nil
}

type soakPool struct {
	valid                                []string
	expired, badSig, unknownKid, noScope string
}
