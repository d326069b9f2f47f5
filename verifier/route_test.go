package verifier

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokengate/tokengate/verifier/verifiertest"
)

// TestSymmetricAndUnsignedJWTsAreNeverIntrospected: a token shaped like a
// JWS is routed by its "iss". When that names the introspection issuer, a
// JWS with alg "none" or HS* (or any alg that is not a public-key one) is
// refused locally, in every spelling of its header, and costs no
// introspection call: an endpoint that validates JWTs itself must never be
// shown an unsigned or HMAC token through tokengate. The same tokens of a
// JWT issuer are refused by that issuer's algorithm list. A public-key JWS
// of the introspection issuer is still introspected.
func TestSymmetricAndUnsignedJWTsAreNeverIntrospected(t *testing.T) {
	idp := verifiertest.New()
	defer idp.Close()
	in := verifiertest.NewIntrospector()
	defer in.Close()
	const partner = "https://partner.example"
	claims := verifiertest.ActiveClaims("webhooks:write", time.Hour) // iss: partner
	enc := base64.RawURLEncoding.EncodeToString
	payload, _ := json.Marshal(claims)
	// spelled builds alg's header (with extra members) spelled by respell.
	spelled := func(alg string, respell func(string) string, sig string) string {
		h, _ := json.Marshal(map[string]any{"alg": alg, "typ": "JWT"})
		return respell(enc(h)) + "." + enc(payload) + "." + sig
	}
	same := func(s string) string { return s }
	padded := func(s string) string { return s + strings.Repeat("=", (4-len(s)%4)%4) }
	spaced := func(string) string { return enc([]byte(` {"alg":"none"}`)) }
	std := func(string) string { // a header whose base64url has '-' and '_'
		h := enc([]byte(`{"alg":"none","x":"???>>>"}`))
		if !strings.ContainsAny(h, "-_") {
			panic(h)
		}
		return strings.NewReplacer("-", "+", "_", "/").Replace(h)
	}
	hmac := func(alg jose.SignatureAlgorithm) string {
		return verifiertest.SignHMAC(alg, []byte(strings.Repeat("a secret the introspection endpoint may share", 2)), "", claims)
	}
	tokens := map[string]string{
		"none":                    spelled("none", same, ""),
		"nOnE":                    spelled("nOnE", same, ""),
		"none, padded header":     spelled("none", padded, ""),
		"none, header with space": spelled("none", spaced, ""),
		"none, standard alphabet": spelled("none", std, ""),
		"none, signature":         spelled("none", same, enc([]byte("sig"))),
		"empty alg":               spelled("", same, ""),
		"HS256":                   hmac(jose.HS256),
		"HS384":                   hmac(jose.HS384),
		"HS512":                   hmac(jose.HS512),
		"hs256":                   spelled("hs256", same, enc([]byte("sig"))),
		"HS256, padded header":    spelled("HS256", func(string) string { return padded(enc([]byte(`{"alg":"HS256" }`))) }, enc([]byte("sig"))),
	}
	for name, tok := range tokens {
		in.Add(tok, claims) // the endpoint would call each one active
		t.Run(name, func(t *testing.T) {
			intro := newIntrospection(t, in, func(o *IntrospectionOptions) { o.OnVerify = func(time.Duration, error) {} })
			jwt := newJWT(t, idp, nil)
			set := NewSet([]Issuer{{"idp", idp.Issuer(), jwt}}, &Issuer{"partner", partner, intro})
			cache, err := NewCache(set, CacheOptions{MaxEntries: 10, MaxTTL: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			before := in.Calls()
			for _, v := range []Verifier{cache, set, intro} {
				p, err := v.Verify(context.Background(), tok)
				if !errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrUnavailable) {
					t.Fatalf("%T: principal %v, err %v, want a local rejection", v, p, err)
				}
			}
			if _, err := cache.VerifyFor(context.Background(), tok, []string{"partner"}); !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("on a route of the introspection issuer: %v", err)
			}
			if n := in.Calls() - before; n != 0 {
				t.Fatalf("a JWS with alg %q of the introspection issuer cost %d introspection call(s)", name, n)
			}
			// The same token naming the JWT issuer: its algorithm list refuses it.
			if _, err := set.Verify(context.Background(), strings.Replace(tok, enc(payload), enc(mustJSON(with(claims, "iss", idp.Issuer()))), 1)); !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("naming the JWT issuer: %v", err)
			}
		})
	}
	// A public-key JWS of the introspection issuer is introspected.
	k := verifiertest.NewKeyFast()
	tok := verifiertest.Sign(k, claims, nil)
	in.Add(tok, claims)
	set := NewSet([]Issuer{{"idp", idp.Issuer(), newJWT(t, idp, nil)}}, &Issuer{"partner", partner, newIntrospection(t, in, nil)})
	before := in.Calls()
	if p, err := set.Verify(context.Background(), tok); err != nil || p.Source != "partner" || in.Calls()-before != 1 {
		t.Fatalf("ES256 JWS of the introspection issuer: %v %v, %d calls", p, err, in.Calls()-before)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
