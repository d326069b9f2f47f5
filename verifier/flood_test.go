package verifier

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokengate/tokengate/verifier/verifiertest"
)

// kidFlood sends tokens of unknown kids to j from workers goroutines until
// stop is called, and counts the answers that were not 401.
type kidFlood struct {
	stop    func()
	mu      sync.Mutex
	answers map[string]int
}

func startKidFlood(t *testing.T, idp *verifiertest.IdP, j *JWT, workers int) *kidFlood {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &kidFlood{answers: map[string]int{}}
	var wg sync.WaitGroup
	for range workers {
		tok := verifiertest.Sign(verifiertest.NewKeyFast(), idp.Claims(aud), nil)
		wg.Go(func() {
			for ctx.Err() == nil {
				_, err := j.Verify(context.Background(), tok)
				answer := "401"
				if !errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrUnavailable) {
					answer = "other: " + errors.Unwrap(err).Error()
				}
				f.mu.Lock()
				f.answers[answer]++
				f.mu.Unlock()
			}
		})
	}
	f.stop = func() { cancel(); wg.Wait(); waitIdle(t, j) }
	return f
}

// TestUnknownKidFloodCostsTheBurstThenOneFetchPerSecond: tokens of unknown
// kids cost the issuer the refetch burst, then one JWKS fetch per
// floodRefetchInterval however many arrive (they share it); each is
// answered 401 from a JWKS fetched after it arrived, never 503 while the
// issuer is up. A known kid with a bad signature never refetches. Once the
// bucket refilled, an unknown kid fetches at once again.
func TestUnknownKidFloodCostsTheBurstThenOneFetchPerSecond(t *testing.T) {
	idp := verifiertest.New()
	defer idp.Close()
	clk := &clock{t: time.Now()} // stands still: the bucket never refills during the flood
	j := newJWT(t, idp, func(o *JWTOptions) { o.Now = clk.Now; o.RefreshCooldown = 30 * time.Second })
	if err := j.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	before, start := idp.JWKSFetches(), time.Now()
	flood := startKidFlood(t, idp, j, 32)
	time.Sleep(2500 * time.Millisecond)
	flood.stop()
	elapsed := time.Since(start)
	got := idp.JWKSFetches() - before
	limit := int64(refetchBurst + 1 + elapsed/floodRefetchInterval)
	t.Logf("%v of flood: answers %v, %d JWKS fetches", elapsed.Round(time.Millisecond), flood.answers, got)
	if got > limit {
		t.Fatalf("an unknown-kid flood of %v caused %d JWKS fetches, want at most %d (the burst, then one per %v)", elapsed, got, limit, floodRefetchInterval)
	}
	if len(flood.answers) != 1 || flood.answers["401"] == 0 {
		t.Fatalf("answers %v, want 401 only", flood.answers)
	}
	before = idp.JWKSFetches()
	forged := verifiertest.NewKeyFast()
	forged.ID = idp.Signer().ID
	for range 50 {
		if _, err := j.Verify(context.Background(), verifiertest.Sign(forged, idp.Claims(aud), nil)); Reason(err) != "signature verification failed" {
			t.Fatalf("known kid, bad signature: %v", err)
		}
	}
	if got := idp.JWKSFetches() - before; got != 0 {
		t.Fatalf("bad signatures with a known kid caused %d JWKS fetches", got)
	}
	clk.Add(31 * time.Second) // one token back in the bucket
	ctx, cancel := context.WithTimeout(context.Background(), floodRefetchInterval/2)
	defer cancel()
	if _, err := j.Verify(ctx, verifiertest.Sign(verifiertest.NewKeyFast(), idp.Claims(aud), nil)); Reason(err) != "unknown signing key" {
		t.Fatalf("after the cooldown, an unknown kid was not answered at once from a new fetch: %v", err)
	}
	if got := idp.JWKSFetches() - before; got != 1 {
		t.Fatalf("after the cooldown: %d JWKS fetches, want 1", got)
	}
}

// TestKeyPublishedDuringAnUnknownKidFloodIsAccepted: an issuer that signs
// with a key the moment it publishes it, while an attacker floods unknown
// kids (the refetch bucket long spent), gets its first token accepted —
// within a flood fetch interval, not after the cooldown (it used to get 503
// for up to 30 s).
func TestKeyPublishedDuringAnUnknownKidFloodIsAccepted(t *testing.T) {
	idp := verifiertest.New()
	defer idp.Close()
	clk := &clock{t: time.Now()}
	j := newJWT(t, idp, func(o *JWTOptions) { o.Now = clk.Now; o.RefreshCooldown = 30 * time.Second })
	if err := j.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := idp.JWKSFetches()
	flood := startKidFlood(t, idp, j, 32)
	defer flood.stop()
	deadline := time.Now().Add(10 * time.Second)
	for idp.JWKSFetches()-before < refetchBurst { // the burst is spent
		if time.Now().After(deadline) {
			t.Fatal("the flood did not spend the refetch burst within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for round := range 2 {
		k := idp.Rotate(jose.ES256, false) // published and signing at once
		published := time.Now()
		_, err := j.Verify(context.Background(), idp.Mint(idp.Claims(aud)))
		took := time.Since(published)
		if err != nil {
			t.Fatalf("round %d: the first token of key %s, published during the flood: %v", round, k.ID, err)
		}
		t.Logf("round %d: accepted %v after its key was published", round, took.Round(time.Millisecond))
		if took > 5*floodRefetchInterval { // one interval and a fetch, on a busy machine
			t.Fatalf("round %d: accepted only %v after its key was published", round, took)
		}
	}
}

// TestUnknownKidWaitersAreBounded: at most maxWaiters unknown-kid tokens
// wait for the shared fetch; the others are answered 503 at once (the kid
// may be a new key: retry). The shared fetch still runs, so a key
// published meanwhile verifies the retried token without another fetch.
func TestUnknownKidWaitersAreBounded(t *testing.T) {
	idp := verifiertest.New()
	defer idp.Close()
	clk := &clock{t: time.Now()}
	j := newJWT(t, idp, func(o *JWTOptions) { o.Now = clk.Now; o.RefreshCooldown = 30 * time.Second })
	if err := j.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	j.keys.(*RemoteKeySet).maxWaiters = 4
	for range refetchBurst { // spend the burst
		if _, err := j.Verify(context.Background(), verifiertest.Sign(verifiertest.NewKeyFast(), idp.Claims(aud), nil)); Reason(err) != "unknown signing key" {
			t.Fatalf("burst: %v", err)
		}
	}
	idp.Rotate(jose.ES256, false) // published before the shared fetch starts
	bogus := verifiertest.Sign(verifiertest.NewKeyFast(), idp.Claims(aud), nil)
	var mu sync.Mutex
	answers := map[string]int{}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			_, err := j.Verify(context.Background(), bogus)
			a := "401"
			switch {
			case errors.Is(err, errRefetchLimited) && errors.Is(err, ErrUnavailable):
				a = "503"
			case Reason(err) != "unknown signing key":
				a = err.Error()
			}
			mu.Lock()
			answers[a]++
			mu.Unlock()
		})
	}
	tok := idp.Mint(idp.Claims(aud))
	if _, err := j.Verify(context.Background(), tok); err != nil && !errors.Is(err, ErrUnavailable) {
		t.Fatalf("the new key's token while the waiters are full: %v", err)
	}
	wg.Wait()
	waitIdle(t, j)
	if len(answers) != 2 || answers["503"] == 0 || answers["401"] == 0 || answers["401"] > 4 {
		t.Fatalf("answers %v: want at most 4 waiters answered 401, the rest 503", answers)
	}
	before := idp.JWKSFetches()
	if _, err := j.Verify(context.Background(), tok); err != nil {
		t.Fatalf("the new key's token, retried after the shared fetch: %v", err)
	}
	if got := idp.JWKSFetches() - before; got != 0 {
		t.Fatalf("the retry cost %d fetches; the shared fetch should have found the key", got)
	}
}
