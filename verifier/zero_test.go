package verifier

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokengate/tokengate/verifier/verifiertest"
)

// TestZeroRefreshCooldownIsTheDefaultNotUnlimited: a JWTOptions without
// RefreshCooldown (a library user who left it out) gets the default bucket.
// Zero used to mean an infinite refill: every unknown kid fetched the JWKS.
func TestZeroRefreshCooldownIsTheDefaultNotUnlimited(t *testing.T) {
	idp := verifiertest.New()
	defer idp.Close()
	clk := &clock{t: time.Now()}
	j, err := NewJWT(JWTOptions{
		Name: "idp", Issuer: idp.Issuer(), Audiences: []string{aud}, Algorithms: []string{"ES256", "RS256"},
		Client: &http.Client{Timeout: 2 * time.Second}, Now: clk.Now, // no RefreshCooldown
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	before, start := idp.JWKSFetches(), time.Now()
	const tokens = 10
	for range tokens {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_, err := j.Verify(ctx, verifiertest.Sign(verifiertest.NewKeyFast(), idp.Claims(aud), nil))
		cancel()
		if !errors.Is(err, ErrInvalidToken) && !errors.Is(err, ErrUnavailable) {
			t.Fatalf("unknown kid: %v", err)
		}
	}
	elapsed := time.Since(start)
	waitIdle(t, j)
	// The burst, then one fetch per floodRefetchInterval (the last one may
	// land after the loop).
	limit := int64(refetchBurst + 1 + elapsed/floodRefetchInterval)
	if got := idp.JWKSFetches() - before; got > limit {
		t.Fatalf("%d unknown kids in %v with a zero RefreshCooldown made %d JWKS fetches, want at most %d", tokens, elapsed, got, limit)
	}
}

// waitIdle waits (bounded) until no JWKS fetch of j is in flight or due.
func waitIdle(t *testing.T, j *JWT) {
	t.Helper()
	r, ok := j.keys.(*RemoteKeySet)
	if !ok {
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for !r.idle() {
		if time.Now().After(deadline) {
			t.Fatal("a JWKS fetch was still in flight or due after 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStaticKeySetValidatesItsKeys: keys given in memory are held to the
// rules a JWKS is: public signature keys of a known type, RSA of at least
// 2048 bits, EC on P-256/384/521, each kid once.
func TestStaticKeySetValidatesItsKeys(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	es, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	//lint:ignore SA1019 an off-curve point can only be made from raw coordinates
	offCurve := &ecdsa.PublicKey{Curve: elliptic.P256(), X: es.X, Y: new(big.Int).Add(es.Y, big.NewInt(1))}
	k := func(key any, kid string) jose.JSONWebKey { return jose.JSONWebKey{Key: key, KeyID: kid} }
	cases := []struct {
		name string
		keys []jose.JSONWebKey
		want string // "" means valid
	}{
		{"rsa, ec, ed25519 (private halves are made public)", []jose.JSONWebKey{k(rsaKey, "r"), k(&es.PublicKey, "e"), k(edPriv, "d")}, ""},
		{"ed25519 public", []jose.JSONWebKey{k(edPub, "d")}, ""},
		{"no keys", nil, "no keys"},
		{"nil key", []jose.JSONWebKey{k(nil, "n")}, "unsupported"},
		{"nil rsa pointer", []jose.JSONWebKey{k((*rsa.PublicKey)(nil), "n")}, "unsupported"},
		{"weak rsa", []jose.JSONWebKey{k(&weak.PublicKey, "w")}, "1024 bits"},
		{"hmac secret", []jose.JSONWebKey{k([]byte(strings.Repeat("s", 32)), "h")}, "unsupported"},
		{"P-224", []jose.JSONWebKey{k(&p224.PublicKey, "p")}, "curve"},
		{"EC point off its curve", []jose.JSONWebKey{k(offCurve, "o")}, "invalid"},
		{"short ed25519", []jose.JSONWebKey{k(edPub[:31], "d")}, "unsupported"},
		{"encryption key", []jose.JSONWebKey{{Key: &es.PublicKey, KeyID: "e", Use: "enc"}}, "encryption"},
		{"HS256 alg on a key", []jose.JSONWebKey{{Key: &rsaKey.PublicKey, KeyID: "r", Algorithm: "HS256"}}, "not a public-key"},
		{"duplicate kid", []jose.JSONWebKey{k(&rsaKey.PublicKey, "x"), k(&es.PublicKey, "x")}, "more than once"},
		{"two keys without kid", []jose.JSONWebKey{k(&rsaKey.PublicKey, ""), k(&es.PublicKey, "")}, "more than once"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := NewStaticKeySet(c.keys)
			if c.want == "" {
				if err != nil || s == nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, c.want)
			}
		})
	}
}
