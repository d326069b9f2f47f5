package verifier

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokengate/tokengate/verifier/verifiertest"
)

// FuzzVerify feeds arbitrary tokens to the JWT verifier (real keys, real
// go-oidc path, in-process key set). Nothing may panic, nothing but the
// one genuinely signed token may pass, and every failure is a rejection —
// never "unavailable", never an error outside the contract.
func FuzzVerify(f *testing.F) {
	key := verifiertest.NewKey(jose.ES256)
	claims := map[string]any{"iss": "https://idp.example", "aud": "a", "sub": "s", "exp": time.Now().Add(time.Hour).Unix()}
	valid := verifiertest.Sign(key, claims, nil)
	j, err := NewJWT(JWTOptions{
		Name: "idp", Issuer: "https://idp.example", KeySet: NewStaticKeySet([]jose.JSONWebKey{key.Public()}),
		Audiences: []string{"a"}, Algorithms: []string{"ES256", "RS256"}, ClockSkew: time.Minute,
	})
	if err != nil {
		f.Fatal(err)
	}
	parts := strings.Split(valid, ".")
	for _, s := range []string{
		valid, "", "...", "a.b.c", parts[0] + "." + parts[1] + ".", parts[0] + ".." + parts[2],
		verifiertest.Unsigned(map[string]any{"alg": "none"}, claims, ""),
		verifiertest.Unsigned(map[string]any{"alg": "HS256", "kid": key.ID}, claims, "c2ln"),
		verifiertest.Unsigned(map[string]any{"alg": "ES256", "kid": "../../etc/passwd", "crit": []string{"x"}}, claims, parts[2]),
		"eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := j.Verify(context.Background(), tok)
		if err == nil {
			if tok != valid || p == nil || p.Subject != "s" {
				t.Fatalf("accepted %q as %+v", tok, p)
			}
			return
		}
		if p != nil {
			t.Fatal("principal returned with an error")
		}
		if !errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrUnavailable) {
			t.Fatalf("error outside the contract: %v", err)
		}
		if Reason(err) == "" {
			t.Fatalf("rejection without a reason: %v", err)
		}
	})
}
