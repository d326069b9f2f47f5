package verifier

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokengate/tokengate/verifier/verifiertest"
)

// signers are keys for every algorithm tokengate accepts, signed by
// go-jose: the hand-off to crypto/rsa, crypto/ecdsa and crypto/ed25519 is
// checked against an independent implementation.
func signers(t *testing.T) map[jose.SignatureAlgorithm]crypto.Signer {
	t.Helper()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ec := func(c elliptic.Curve) crypto.Signer {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return map[jose.SignatureAlgorithm]crypto.Signer{
		jose.RS256: rsaKey, jose.RS384: rsaKey, jose.RS512: rsaKey,
		jose.PS256: rsaKey, jose.PS384: rsaKey, jose.PS512: rsaKey,
		jose.ES256: ec(elliptic.P256()), jose.ES384: ec(elliptic.P384()), jose.ES512: ec(elliptic.P521()),
		jose.EdDSA: ed,
	}
}

func TestEveryAlgorithmVerifiesGoJoseSignaturesAndNothingElse(t *testing.T) {
	keys := signers(t)
	claims := map[string]any{"iss": "https://idp.example", "aud": "a", "sub": "s", "exp": time.Now().Add(time.Hour).Unix()}
	for alg, priv := range keys {
		t.Run(string(alg), func(t *testing.T) {
			k := &verifiertest.Key{ID: "k", Alg: alg, Private: priv}
			tok := verifiertest.Sign(k, claims, nil)
			j, err := NewJWT(JWTOptions{Name: "idp", Issuer: "https://idp.example", KeySet: mustStatic(t, k.Public()),
				Audiences: []string{"a"}, Algorithms: []string{string(alg)}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := j.Verify(context.Background(), tok); err != nil {
				t.Fatalf("a genuine %s token: %v", alg, err)
			}
			parts := strings.Split(tok, ".")
			sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
			flipped := append([]byte(nil), sig...)
			flipped[len(flipped)/2] ^= 1
			for name, bad := range map[string]string{
				"flipped signature bit": parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(flipped),
				"signature cut short":   parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig[:len(sig)-1]),
				"changed payload":       parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"https://idp.example","aud":"a","sub":"t","exp":9999999999}`)) + "." + parts[2],
			} {
				if _, err := j.Verify(context.Background(), bad); Reason(err) != "signature verification failed" {
					t.Errorf("%s: %v", name, err)
				}
			}
			// Every other key type (or curve) must refuse this signature.
			in := parts[0] + "." + parts[1]
			rsaAlg := func(a jose.SignatureAlgorithm) bool { return a[0] == 'R' || a[0] == 'P' }
			for other, op := range keys {
				if other == alg || rsaAlg(alg) && rsaAlg(other) {
					continue // the same key
				}
				if err := verifySignature(alg, op.Public(), in, sig); err == nil {
					t.Errorf("%s signature verified with the %s key", alg, other)
				}
			}
		})
	}
}

func TestJWSHeaderIsReadStrictly(t *testing.T) {
	k := verifiertest.NewKey(jose.ES256)
	claims := []byte(`{"iss":"i","aud":"a","exp":` + strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10) + `}`)
	j, err := NewJWT(JWTOptions{Name: "i", Issuer: "i", KeySet: mustStatic(t, k.Public()), Audiences: []string{"a"}, Algorithms: []string{"ES256"}})
	if err != nil {
		t.Fatal(err)
	}
	kid := `,"kid":"` + k.ID + `"`
	for name, c := range map[string]struct {
		header string
		reason string
	}{
		"alg given twice":   {`{"alg":"ES256","alg":"none"` + kid + `}`, reasonAlg},
		"alg not a string":  {`{"alg":256` + kid + `}`, reasonAlg},
		"ALG is not alg":    {`{"ALG":"ES256"` + kid + `}`, reasonAlg},
		"no alg":            {`{"kid":"` + k.ID + `"}`, reasonAlg},
		"crit":              {`{"alg":"ES256","crit":[]` + kid + `}`, "unsupported critical header"},
		"b64":               {`{"alg":"ES256","b64":true` + kid + `}`, "unsupported critical header"},
		"HS256":             {`{"alg":"HS256"` + kid + `}`, reasonAlg},
		"escaped alg value": {`{"alg":"\u0045S256"` + kid + `}`, ""},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := j.Verify(context.Background(), verifiertest.SignRawHeader(k, []byte(c.header), claims))
			if c.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if Reason(err) != c.reason {
				t.Fatalf("err = %v, want reason %q", err, c.reason)
			}
		})
	}
}
