package verifier

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math/big"
	"strings"
	"syscall"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokengate/tokengate/verifier/verifiertest"
)

// token1KB is a realistic large JWT-shaped token of about 1 KB.
var token1KB = strings.Repeat("eyJhbGciOiJSUzI1NiJ9", 52)[:1024]

// BenchmarkSHA256Token1KB is the floor of a cache hit: hashing the token.
func BenchmarkSHA256Token1KB(b *testing.B) {
	buf := []byte(token1KB)
	b.ReportAllocs()
	for b.Loop() {
		_ = sha256.Sum256(buf)
	}
}

// BenchmarkCacheHit1KB is a cached verification of a 1 KB token.
func BenchmarkCacheHit1KB(b *testing.B) {
	c, err := NewCache(Func(func(context.Context, string) (*Principal, error) {
		return &Principal{Subject: "s", Expiry: time.Now().Add(time.Hour)}, nil
	}), CacheOptions{MaxEntries: 1000, MaxTTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Verify(ctx, token1KB); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Verify(ctx, token1KB); err != nil {
			b.Fatal(err)
		}
	}
}

func benchJWT(b *testing.B, alg jose.SignatureAlgorithm) {
	k := verifiertest.NewKey(alg)
	j, err := NewJWT(JWTOptions{
		Name: "idp", Issuer: "https://idp.example", KeySet: mustStatic(b, k.Public()),
		Audiences: []string{"aud"}, Algorithms: []string{"RS256", "ES256"}, ClockSkew: time.Minute,
	})
	if err != nil {
		b.Fatal(err)
	}
	claims := map[string]any{"iss": "https://idp.example", "aud": "aud", "sub": "s", "scope": "webhooks:write", "client_id": "c",
		"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()}
	tok := verifiertest.Sign(k, claims, nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := j.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyRS256 is one full verification through go-oidc.
func BenchmarkVerifyRS256(b *testing.B) { benchJWT(b, jose.RS256) }

// BenchmarkVerifyES256 is one full verification through go-oidc.
func BenchmarkVerifyES256(b *testing.B) { benchJWT(b, jose.ES256) }

func rawSignature(b *testing.B, alg jose.SignatureAlgorithm) (crypto.PublicKey, []byte, []byte) {
	k := verifiertest.NewKey(alg)
	tok := verifiertest.Sign(k, map[string]any{"iss": "https://idp.example", "exp": 1}, nil)
	parts := strings.Split(tok, ".")
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	return k.Private.Public(), digest[:], sig
}

// BenchmarkRawRSAVerify is the crypto floor of RS256: SHA-256 of the
// signing input is done outside, as go-jose also hashes.
func BenchmarkRawRSAVerify(b *testing.B) {
	pub, digest, sig := rawSignature(b, jose.RS256)
	b.ReportAllocs()
	for b.Loop() {
		if err := rsa.VerifyPKCS1v15(pub.(*rsa.PublicKey), crypto.SHA256, digest, sig); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawECDSAVerify is the crypto floor of ES256.
func BenchmarkRawECDSAVerify(b *testing.B) {
	pub, digest, sig := rawSignature(b, jose.ES256)
	b.ReportAllocs()
	for b.Loop() {
		if !ecdsa.Verify(pub.(*ecdsa.PublicKey), digest, new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
			b.Fatal("ecdsa verify failed")
		}
	}
}

// BenchmarkSetIssuers is one verification (ES256, no cache) of a token of
// the last of n configured issuers: the issuer is found by "iss" in a map,
// so the cost does not grow with n.
func BenchmarkSetIssuers(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("issuers=%d", n), func(b *testing.B) {
			var issuers []Issuer
			var k *verifiertest.Key
			for i := range n {
				k = verifiertest.NewKey(jose.ES256)
				iss := fmt.Sprintf("https://idp%d.example", i)
				j, err := NewJWT(JWTOptions{Name: fmt.Sprint("idp", i), Issuer: iss, KeySet: mustStatic(b, k.Public()),
					Audiences: []string{"aud"}, Algorithms: []string{"ES256"}})
				if err != nil {
					b.Fatal(err)
				}
				issuers = append(issuers, Issuer{Name: j.Name(), Iss: iss, Verifier: j})
			}
			set := NewSet(issuers, nil)
			tok := verifiertest.Sign(k, map[string]any{"iss": issuers[n-1].Iss, "aud": "aud", "sub": "s", "scope": "webhooks:write",
				"exp": time.Now().Add(time.Hour).Unix()}, nil)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := set.Verify(context.Background(), tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCacheHitScale is a cache hit (64-byte tokens, consecutive hits
// far apart) with 1,000, 100,000 and 1,000,000 tokens cached.
func BenchmarkCacheHitScale(b *testing.B) {
	for _, n := range []int{1_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("tokens=%d", n), func(b *testing.B) {
			exp := time.Now().Add(time.Hour)
			c, err := NewCache(Func(func(context.Context, string) (*Principal, error) {
				return &Principal{Source: "idp", Subject: "s", Scopes: []string{"webhooks:write"}, Expiry: exp}, nil
			}), CacheOptions{MaxEntries: n, MaxTTL: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			tokens := make([]string, n)
			for i := range tokens {
				tokens[i] = fmt.Sprintf("%064d", i)
				if _, err := c.Verify(context.Background(), tokens[i]); err != nil {
					b.Fatal(err)
				}
			}
			i := 0
			b.ReportAllocs()
			var ru0, ru1 syscall.Rusage
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
			for b.Loop() {
				i = (i + 7919) % n
				if _, err := c.Verify(context.Background(), tokens[i]); err != nil {
					b.Fatal(err)
				}
			}
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
			cpu := ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano()
			b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op") // CPU time, the GC's included
			if c.Stats().Verifications != uint64(n) {
				b.Fatal("a token left the cache")
			}
		})
	}
}
