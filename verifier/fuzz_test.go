package verifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokengate/tokengate/verifier/verifiertest"
)

// FuzzVerify feeds arbitrary tokens to the JWT verifier (real keys, the
// go-jose path, in-process key set), seeded with one token per attack-table
// row (SECURITY.md). Nothing may panic, nothing but the
// one genuinely signed token may pass, and every failure is a rejection —
// never "unavailable", never an error outside the contract.
func FuzzVerify(f *testing.F) {
	key := verifiertest.NewKey(jose.ES256)
	claims := map[string]any{"iss": "https://idp.example", "aud": "a", "sub": "s", "exp": time.Now().Add(time.Hour).Unix()}
	valid := verifiertest.Sign(key, claims, nil)
	j, err := NewJWT(JWTOptions{
		Name: "idp", Issuer: "https://idp.example", KeySet: mustStatic(f, key.Public()),
		Audiences: []string{"a"}, Algorithms: []string{"ES256", "RS256"}, ClockSkew: time.Minute,
	})
	if err != nil {
		f.Fatal(err)
	}
	parts := strings.Split(valid, ".")
	pub, _ := json.Marshal(key.Public())
	exp := claims["exp"]
	with := func(kv ...any) map[string]any {
		c := map[string]any{}
		for k, v := range claims {
			c[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			c[kv[i].(string)] = kv[i+1]
		}
		return c
	}
	seeds := []string{
		valid, // the one token that must pass
		// Shapes: empty, only dots, three junk parts, missing signature,
		// missing payload, JWE (five parts), a 64 KB token.
		"", "...", "a.b.c", parts[0] + "." + parts[1] + ".", parts[0] + ".." + parts[2],
		"eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d",
		strings.Repeat("A", 64<<10),
		// alg none in its spellings.
		verifiertest.Unsigned(map[string]any{"alg": "none"}, claims, ""),
		verifiertest.Unsigned(map[string]any{"alg": "nOnE"}, claims, ""),
		// HS256/HS384 keyed with the public key (key confusion).
		verifiertest.SignHMAC(jose.HS256, pub, key.ID, claims),
		verifiertest.SignHMAC(jose.HS384, pub, key.ID, claims),
		// A key in the header: jwk, jku, x5u (must be ignored).
		verifiertest.Sign(verifiertest.NewKeyFast(), claims, map[string]any{"jwk": json.RawMessage(pub)}),
		verifiertest.Sign(verifiertest.NewKeyFast(), claims, map[string]any{"jku": "http://127.0.0.1:1/jwks"}),
		verifiertest.Sign(verifiertest.NewKeyFast(), claims, map[string]any{"x5u": "http://127.0.0.1:1/cert"}),
		// kid with path traversal, SQL, shell, NUL, CR LF.
		verifiertest.Unsigned(map[string]any{"alg": "ES256", "kid": "../../etc/passwd"}, claims, parts[2]),
		verifiertest.Unsigned(map[string]any{"alg": "ES256", "kid": "' OR '1'='1"}, claims, parts[2]),
		verifiertest.Unsigned(map[string]any{"alg": "ES256", "kid": "$(id)\x00\r\nX: 1"}, claims, parts[2]),
		// crit: unknown, empty, b64 (unencoded payload).
		verifiertest.Sign(key, claims, map[string]any{"crit": []string{"urn:x"}, "urn:x": true}),
		verifiertest.Sign(key, claims, map[string]any{"crit": []string{}}),
		verifiertest.Sign(key, claims, map[string]any{"crit": []string{"b64"}, "b64": false}),
		// Nested JWT: cty JWT, the payload a JWS.
		verifiertest.Sign(key, map[string]any{"jws": valid}, map[string]any{"cty": "JWT"}),
		// Non-ASCII bytes.
		parts[0] + ".\xff\xfe." + parts[2],
		// exp as a string, as a float, named EXP; aud given twice.
		verifiertest.Sign(key, with("exp", fmt.Sprint(exp)), nil),
		verifiertest.Sign(key, with("exp", float64(time.Now().Add(-time.Hour).Unix())+0.5), nil), // a float exp in the past
		verifiertest.Sign(key, with("EXP", exp, "exp", nil), nil),
		verifiertest.SignRaw(key, []byte(fmt.Sprintf(`{"iss":"https://idp.example","sub":"s","exp":%d,"aud":"x","aud":"a"}`, exp)), nil),
	}
	for _, s := range seeds {
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
