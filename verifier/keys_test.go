package verifier

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokengate/tokengate/verifier/verifiertest"
)

func TestNewlyPublishedKeyIsAcceptedOnItsFirstToken(t *testing.T) {
	idp := verifiertest.New()
	defer idp.Close()
	clk := &clock{t: time.Now()}
	j := newJWT(t, idp, func(o *JWTOptions) { o.Now = clk.Now; o.RefreshCooldown = 30 * time.Second })
	if err := j.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Right after start, and again right after each refetch another new
	// key caused: the issuer signs with a key it published a moment ago.
	for round := range 3 { // start-up, then right after each refetch another new key caused
		k := idp.Rotate(jose.ES256, false)
		if _, err := j.Verify(context.Background(), idp.Mint(idp.Claims(aud))); err != nil {
			t.Fatalf("round %d: first token of the new key %s refused: %v", round, k.ID, err)
		}
	}
}

func TestWithdrawnKeyEndsCachedVerificationsWithinTheRefreshInterval(t *testing.T) {
	idp := verifiertest.New()
	defer idp.Close()
	j := newJWT(t, idp, func(o *JWTOptions) { o.RefreshInterval = 200 * time.Millisecond })
	if err := j.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { j.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	cache, err := NewCache(j, CacheOptions{MaxEntries: 10, MaxTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	old := idp.Signer()
	tok := idp.Mint(idp.Claims(aud))
	if _, err := cache.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	idp.Rotate(jose.ES256, true) // the old key leaves the JWKS
	withdrawn := time.Now()
	for {
		_, err := cache.Verify(context.Background(), tok)
		if errors.Is(err, ErrInvalidToken) {
			break
		}
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		if time.Since(withdrawn) > 2*time.Second {
			t.Fatalf("a token of withdrawn key %s still passed (from the cache) %v after the withdrawal", old.ID, time.Since(withdrawn))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("withdrawn key refused %v after its withdrawal (refresh interval 200ms)", time.Since(withdrawn).Round(time.Millisecond))
	if _, err := cache.Verify(context.Background(), idp.Mint(idp.Claims(aud))); err != nil {
		t.Fatalf("the new key: %v", err)
	}
}

func TestUnchangedJWKSIsRevalidatedWithETag(t *testing.T) {
	idp := verifiertest.New()
	defer idp.Close()
	j := newJWT(t, idp, nil)
	for range 3 {
		if err := j.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := idp.JWKSNotModified(); n != 2 {
		t.Fatalf("%d of 3 fetches answered 304 Not Modified, want 2", n)
	}
	if _, err := j.Verify(context.Background(), idp.Mint(idp.Claims(aud))); err != nil {
		t.Fatalf("keys kept after a 304: %v", err)
	}
}

// jwksServer serves a fixed JWKS.
func jwksServer(t *testing.T, keys ...jose.JSONWebKey) *httptest.Server {
	t.Helper()
	body, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(body) }))
	t.Cleanup(s.Close)
	return s
}

func TestWeakRSAKeysAreIgnoredWithAWarning(t *testing.T) {
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	signer := &verifiertest.Key{ID: "weak", Alg: jose.RS256, Private: weak}
	srv := jwksServer(t, signer.Public())
	var warnings []string
	j, err := NewJWT(JWTOptions{
		Name: "w", Issuer: "https://w.example", JWKSURL: srv.URL, Audiences: []string{aud}, Algorithms: []string{"RS256"},
		OnJWKSWarning: func(m string) { warnings = append(warnings, m) },
	})
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{"iss": "https://w.example", "aud": aud, "exp": time.Now().Add(time.Hour).Unix()}
	_, err = j.Verify(context.Background(), verifiertest.Sign(signer, claims, nil))
	if !errors.Is(err, ErrInvalidToken) && !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a token signed by a 1024-bit RSA key: %v", err)
	}
	if len(warnings) == 0 || !strings.Contains(warnings[0], "1024 bits") {
		t.Fatalf("warnings = %q", warnings)
	}
}

func TestKeyIsUsedOnlyWithItsOwnAlg(t *testing.T) {
	k := verifiertest.NewKey(jose.RS256)
	pub := k.Public()
	pub.Algorithm = "PS256" // the JWK says PS256; a token says RS256
	srv := jwksServer(t, pub)
	j, err := NewJWT(JWTOptions{Name: "a", Issuer: "https://a.example", JWKSURL: srv.URL, Audiences: []string{aud}, Algorithms: []string{"RS256", "PS256"}})
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{"iss": "https://a.example", "aud": aud, "exp": time.Now().Add(time.Hour).Unix()}
	if _, err := j.Verify(context.Background(), verifiertest.Sign(k, claims, nil)); Reason(err) != "signature verification failed" {
		t.Fatalf("RS256 token with a PS256 JWK: %v", err)
	}
	ps := *k
	ps.Alg = jose.PS256
	if _, err := j.Verify(context.Background(), verifiertest.Sign(&ps, claims, nil)); err != nil {
		t.Fatalf("PS256 token with the PS256 JWK: %v", err)
	}
}

func TestRouteIssuersLimitWhoSeesTheToken(t *testing.T) {
	idp := verifiertest.New()
	defer idp.Close()
	in := verifiertest.NewIntrospector()
	defer in.Close()
	in.Add("opaque", verifiertest.ActiveClaims("x", time.Hour))
	j := newJWT(t, idp, nil)
	set := NewSet([]Issuer{{"idp", idp.Issuer(), j}}, &Issuer{"partner", "https://partner.example", newIntrospection(t, in, nil)})
	cache, err := NewCache(set, CacheOptions{MaxEntries: 10, MaxTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := cache.VerifyFor(ctx, "opaque", []string{"idp"}); Reason(err) != "token not accepted on this route" {
		t.Fatalf("opaque token on a JWT-only route: %v", err)
	}
	if n := in.Calls(); n != 0 {
		t.Fatalf("an opaque token on a JWT-only route cost %d introspection call(s)", n)
	}
	if _, err := cache.VerifyFor(ctx, idp.Mint(idp.Claims(aud)), []string{"partner"}); Reason(err) != "token not accepted on this route" {
		t.Fatalf("JWT on an introspection-only route: %v", err)
	}
	if n := in.Calls(); n != 0 {
		t.Fatalf("a JWT cost %d introspection call(s)", n)
	}
	if p, err := cache.VerifyFor(ctx, "opaque", nil); err != nil || p.Source != "partner" {
		t.Fatalf("a route naming no issuers accepts all: %v %v", p, err)
	}
	// A JWT of an unconfigured issuer never leaves the process.
	foreign := verifiertest.Sign(verifiertest.NewKeyFast(), map[string]any{"iss": "https://elsewhere", "aud": aud, "exp": time.Now().Add(time.Hour).Unix()}, nil)
	if _, err := cache.VerifyFor(ctx, foreign, nil); Reason(err) != "issuer not accepted" || in.Calls() != 1 {
		t.Fatalf("foreign JWT: %v, %d introspection calls (want the 1 above)", err, in.Calls())
	}
}

func TestIntrospectionFloodIsBoundedAndCachedTokensKeepPassing(t *testing.T) {
	in := verifiertest.NewIntrospector()
	defer in.Close()
	in.Add("good", verifiertest.ActiveClaims("x", time.Hour))
	v := newIntrospection(t, in, func(o *IntrospectionOptions) { o.RatePerSecond = 5; o.Burst = 10; o.MaxConcurrent = 4 })
	cache, err := NewCache(v, CacheOptions{MaxEntries: 1000, MaxTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := cache.Verify(ctx, "good"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	unavailable := 0
	var wg sync.WaitGroup
	for i := range 300 {
		wg.Go(func() {
			_, err := cache.Verify(ctx, "random-"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+time.Now().String())
			if errors.Is(err, ErrUnavailable) {
				mu.Lock()
				unavailable++
				mu.Unlock()
			}
			if _, err := cache.Verify(ctx, "good"); err != nil {
				t.Errorf("a cached valid token failed during the flood: %v", err)
			}
		})
	}
	wg.Wait()
	if calls := in.Calls(); calls > 1+10+5 {
		t.Fatalf("300 random tokens made %d introspection calls, want at most 1+burst 10 (+rate)", calls)
	}
	if unavailable < 250 {
		t.Fatalf("only %d of 300 flood tokens were answered unavailable (503)", unavailable)
	}
}

// mustStatic is a key set in memory holding keys.
func mustStatic(t testing.TB, keys ...jose.JSONWebKey) *StaticKeySet {
	t.Helper()
	s, err := NewStaticKeySet(keys)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
