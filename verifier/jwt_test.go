package verifier

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokengate/tokengate/verifier/verifiertest"
)

const aud = "https://hooks.example.com"

func newJWT(t *testing.T, idp *verifiertest.IdP, mod func(*JWTOptions)) *JWT {
	t.Helper()
	o := JWTOptions{
		Name: "idp", Issuer: idp.Issuer(), Audiences: []string{aud},
		Algorithms: []string{"RS256", "ES256"}, ClockSkew: 30 * time.Second,
		RefreshCooldown: time.Minute, Client: &http.Client{Timeout: 2 * time.Second},
	}
	if mod != nil {
		mod(&o)
	}
	j, err := NewJWT(o)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// rawClaims is a JSON claim set with iss and sub, plus members written as
// raw JSON (format and args), for duplicate and escaped names.
func rawClaims(i *verifiertest.IdP, format string, args ...any) []byte {
	return []byte(fmt.Sprintf(`{"iss":%q,"sub":"aftership",`+format+`}`, append([]any{i.Issuer()}, args...)...))
}

func with(c map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

type jwtCase struct {
	name   string
	token  func(idp *verifiertest.IdP) string
	mod    func(*JWTOptions)
	reason string // "" means the token must be accepted
}

func (c jwtCase) run(t *testing.T) {
	idp := verifiertest.New()
	defer idp.Close()
	j := newJWT(t, idp, c.mod)
	p, err := j.Verify(context.Background(), c.token(idp))
	if c.reason == "" {
		if err != nil {
			t.Fatalf("rejected a valid token: %v", err)
		}
		if p.Source != "idp" || p.Issuer != idp.Issuer() || p.Subject != "aftership" {
			t.Fatalf("principal = %+v", p)
		}
		return
	}
	if err == nil {
		t.Fatalf("accepted a token that must fail with %q", c.reason)
	}
	if !errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrInvalidToken only", err)
	}
	if got := Reason(err); got != c.reason {
		t.Fatalf("reason = %q (%v), want %q", got, err, c.reason)
	}
}

func TestJWTVerification(t *testing.T) {
	now := time.Now()
	pubPEM := func(idp *verifiertest.IdP) []byte {
		der, _ := x509.MarshalPKIXPublicKey(idp.Signer().Private.Public())
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	cases := []jwtCase{
		{"valid RS256", func(i *verifiertest.IdP) string { return i.Mint(i.Claims(aud, "webhooks:write")) }, nil, ""},
		{"valid ES256", func(i *verifiertest.IdP) string { return verifiertest.Sign(i.Keys()[1], i.Claims(aud), nil) }, nil, ""},
		{"audience in a list", func(i *verifiertest.IdP) string { return i.Mint(with(i.Claims(aud), "aud", []string{"other", aud})) }, nil, ""},
		{"expired inside skew", func(i *verifiertest.IdP) string {
			return i.Mint(with(i.Claims(aud), "exp", now.Add(-20*time.Second).Unix()))
		}, nil, ""},
		{"fractional exp", func(i *verifiertest.IdP) string {
			return i.Mint(with(i.Claims(aud), "exp", float64(now.Add(time.Hour).Unix())+0.5))
		}, nil, ""},
		{"expired past skew", func(i *verifiertest.IdP) string {
			return i.Mint(with(i.Claims(aud), "exp", now.Add(-31*time.Second).Unix()))
		}, nil, "token expired"},
		{"no exp", func(i *verifiertest.IdP) string { return i.Mint(with(i.Claims(aud), "exp", nil)) }, nil, "token has no expiry"},
		{"exp as string", func(i *verifiertest.IdP) string {
			return i.Mint(with(i.Claims(aud), "exp", "9999999999"))
		}, nil, "malformed claims"},
		{"nbf in the future", func(i *verifiertest.IdP) string {
			return i.Mint(with(i.Claims(aud), "nbf", now.Add(time.Minute).Unix()))
		}, nil, "token not yet valid"},
		{"iat in the future", func(i *verifiertest.IdP) string {
			return i.Mint(with(i.Claims(aud), "iat", now.Add(time.Minute).Unix()))
		}, nil, "token issued in the future"},
		{"wrong issuer", func(i *verifiertest.IdP) string { return i.Mint(with(i.Claims(aud), "iss", "https://evil.example")) }, nil, "issuer not accepted"},
		{"wrong audience", func(i *verifiertest.IdP) string { return i.Mint(i.Claims("https://other.example")) }, nil, "audience not accepted"},
		{"no audience", func(i *verifiertest.IdP) string { return i.Mint(with(i.Claims(aud), "aud", nil)) }, nil, "audience not accepted"},
		{"audience check skipped on request", func(i *verifiertest.IdP) string { return i.Mint(i.Claims("https://other.example")) }, func(o *JWTOptions) { o.Audiences, o.SkipAudienceCheck = nil, true }, ""},
		{"alg none", func(i *verifiertest.IdP) string {
			return verifiertest.Unsigned(map[string]any{"alg": "none", "typ": "JWT"}, i.Claims(aud), "")
		}, nil, "malformed token or algorithm not allowed"},
		{"HS256 signed with the RSA public key", func(i *verifiertest.IdP) string {
			return verifiertest.SignHMAC(jose.HS256, pubPEM(i), i.Signer().ID, i.Claims(aud))
		}, nil, "malformed token or algorithm not allowed"},
		{"algorithm outside the allow-list", func(i *verifiertest.IdP) string { return verifiertest.Sign(i.Keys()[1], i.Claims(aud), nil) }, func(o *JWTOptions) { o.Algorithms = []string{"RS256"} }, "malformed token or algorithm not allowed"},
		{"unknown kid", func(i *verifiertest.IdP) string {
			return verifiertest.Sign(verifiertest.NewKey(jose.RS256), i.Claims(aud), nil)
		}, nil, "unknown signing key"},
		{"bad signature with a known kid", func(i *verifiertest.IdP) string {
			forged := verifiertest.NewKey(jose.RS256)
			forged.ID = i.Signer().ID
			return verifiertest.Sign(forged, i.Claims(aud), nil)
		}, nil, "signature verification failed"},
		{"tampered payload", func(i *verifiertest.IdP) string {
			tok := i.Mint(i.Claims(aud, "read"))
			parts := strings.Split(tok, ".")
			c := i.Claims(aud, "admin")
			b, _ := json.Marshal(c)
			parts[1] = b64(b)
			return strings.Join(parts, ".")
		}, nil, "signature verification failed"},
		{"embedded jwk header is ignored", func(i *verifiertest.IdP) string {
			attacker := verifiertest.NewKey(jose.RS256)
			attacker.ID = "attacker"
			pub := attacker.Public()
			return verifiertest.Sign(attacker, i.Claims(aud), map[string]any{"jwk": pub})
		}, nil, "unknown signing key"},
		{"garbage", func(*verifiertest.IdP) string { return "not-a-jwt" }, nil, "malformed token or algorithm not allowed"},
		{"empty", func(*verifiertest.IdP) string { return "" }, nil, "malformed token or algorithm not allowed"},
		{"only dots", func(*verifiertest.IdP) string { return "..." }, nil, "malformed token or algorithm not allowed"},
		{"too large", func(*verifiertest.IdP) string { return strings.Repeat("a", 64<<10) }, nil, "token too large"},
		{"typ required and present", func(i *verifiertest.IdP) string {
			return verifiertest.Sign(i.Signer(), i.Claims(aud), map[string]any{"typ": "at+jwt"})
		}, func(o *JWTOptions) { o.RequiredType = "at+jwt" }, ""},
		{"typ required and wrong", func(i *verifiertest.IdP) string { return i.Mint(i.Claims(aud)) }, func(o *JWTOptions) { o.RequiredType = "at+jwt" }, "token type not accepted"},
		{"unknown crit header", func(i *verifiertest.IdP) string {
			return verifiertest.Sign(i.Signer(), i.Claims(aud), map[string]any{"crit": []string{"exp-ext"}, "exp-ext": 1})
		}, nil, "unsupported critical header"},
		{"empty crit header", func(i *verifiertest.IdP) string {
			return verifiertest.Sign(i.Signer(), i.Claims(aud), map[string]any{"crit": []string{}})
		}, nil, "unsupported critical header"},
		{"crit b64 (unencoded payload)", func(i *verifiertest.IdP) string {
			return verifiertest.Sign(i.Signer(), i.Claims(aud), map[string]any{"crit": []string{"b64"}, "b64": true})
		}, nil, "unsupported critical header"},
		{"EXP instead of exp", func(i *verifiertest.IdP) string {
			return i.Mint(with(i.Claims(aud), "EXP", i.Claims(aud)["exp"], "exp", nil))
		}, nil, "token has no expiry"},
		{"Aud instead of aud", func(i *verifiertest.IdP) string { return i.Mint(with(i.Claims(aud), "Aud", aud, "aud", nil)) }, nil, "audience not accepted"},
		{"ISS instead of iss", func(i *verifiertest.IdP) string { return i.Mint(with(i.Claims(aud), "ISS", i.Issuer(), "iss", nil)) }, nil, "issuer not accepted"},
		{"exp given twice", func(i *verifiertest.IdP) string {
			return verifiertest.SignRaw(i.Signer(), rawClaims(i, `"exp":1,"exp":%d`, time.Now().Add(time.Hour).Unix()), nil)
		}, nil, "malformed claims"},
		{"aud given twice", func(i *verifiertest.IdP) string {
			return verifiertest.SignRaw(i.Signer(), rawClaims(i, `"exp":%d,"aud":"other","aud":%q`, time.Now().Add(time.Hour).Unix(), aud), nil)
		}, nil, "malformed claims"},
		{"escaped name is the same claim", func(i *verifiertest.IdP) string {
			return verifiertest.SignRaw(i.Signer(), rawClaims(i, `"exp":%d,"aud":%q,"\u0061ud":"other"`, time.Now().Add(time.Hour).Unix(), aud), nil)
		}, nil, "malformed claims"},
		{"raw payload with exact names verifies", func(i *verifiertest.IdP) string {
			return verifiertest.SignRaw(i.Signer(), rawClaims(i, `"exp":%d,"aud":%q`, time.Now().Add(time.Hour).Unix(), aud), nil)
		}, nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, c.run)
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestJWTScopesAndClientID(t *testing.T) {
	idp := verifiertest.New()
	defer idp.Close()
	j := newJWT(t, idp, nil)
	cases := []struct {
		name       string
		claims     map[string]any
		wantScopes []string
		wantClient string
	}{
		{"scope string", with(idp.Claims(aud), "scope", "a b  c"), []string{"a", "b", "c"}, "aftership"},
		{"scp list", with(idp.Claims(aud), "scope", nil, "scp", []string{"apps.webhook:execute", "*:webhooks/**"}), []string{"apps.webhook:execute", "*:webhooks/**"}, "aftership"},
		{"scp string", with(idp.Claims(aud), "scope", nil, "scp", "x y"), []string{"x", "y"}, "aftership"},
		{"azp", with(idp.Claims(aud), "client_id", nil, "azp", "deployteq"), nil, "deployteq"},
		{"cid", with(idp.Claims(aud), "client_id", nil, "cid", "akamai"), nil, "akamai"},
		{"appid (Entra ID v1)", with(idp.Claims(aud), "client_id", nil, "appid", "6731de76-14a6-49ae-97bc-6eba6914391e"), nil, "6731de76-14a6-49ae-97bc-6eba6914391e"},
		{"azp before appid", with(idp.Claims(aud), "client_id", nil, "azp", "v2-app", "appid", "v1-app"), nil, "v2-app"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := j.Verify(context.Background(), idp.Mint(c.claims))
			if err != nil {
				t.Fatal(err)
			}
			if c.wantScopes != nil && strings.Join(p.Scopes, "|") != strings.Join(c.wantScopes, "|") {
				t.Errorf("scopes = %q, want %q", p.Scopes, c.wantScopes)
			}
			if p.ClientID != c.wantClient {
				t.Errorf("client id = %q, want %q", p.ClientID, c.wantClient)
			}
		})
	}
}

func TestIdPDownReturns503NotUnauthorized(t *testing.T) {
	idp := verifiertest.New()
	defer idp.Close()
	idp.SetDown(true)
	clk := &clock{t: time.Now()}
	j := newJWT(t, idp, func(o *JWTOptions) { o.JWKSURL = idp.JWKSURL(); o.Now = clk.Now })
	tok := idp.Mint(idp.Claims(aud))
	_, err := j.Verify(context.Background(), tok)
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalidToken) {
		t.Fatalf("JWKS down: err = %v, want ErrUnavailable", err)
	}
	if j.Ready() {
		t.Fatal("ready without keys")
	}
	idp.SetDown(false)
	clk.Add(5 * time.Second) // a failed fetch is retried after min(cooldown, 5s)
	if _, err := j.Verify(context.Background(), tok); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	if !j.Ready() {
		t.Fatal("not ready after keys were fetched")
	}
}

func TestDiscoveryDownThenRecovers(t *testing.T) {
	idp := verifiertest.New()
	defer idp.Close()
	idp.SetDown(true)
	clock := time.Now()
	j := newJWT(t, idp, func(o *JWTOptions) { o.Now = func() time.Time { return clock } })
	tok := idp.Mint(idp.Claims(aud))
	if err := j.Start(context.Background()); err == nil {
		t.Fatal("Start succeeded with discovery down")
	}
	if _, err := j.Verify(context.Background(), tok); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	idp.SetDown(false)
	clock = clock.Add(discoveryRetry + time.Second)
	if _, err := j.Verify(context.Background(), tok); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

func TestKeyRotationAcceptedWithoutRestart(t *testing.T) {
	idp := verifiertest.New()
	defer idp.Close()
	clock := time.Now()
	j := newJWT(t, idp, func(o *JWTOptions) { o.Now = func() time.Time { return clock }; o.RefreshCooldown = 10 * time.Second })
	if err := j.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Verify(context.Background(), idp.Mint(idp.Claims(aud))); err != nil {
		t.Fatal(err)
	}
	before := idp.JWKSFetches()
	idp.Rotate(jose.ES256, true)
	clock = clock.Add(11 * time.Second)
	if _, err := j.Verify(context.Background(), idp.Mint(idp.Claims(aud))); err != nil {
		t.Fatalf("token from the rotated key: %v", err)
	}
	if got := idp.JWKSFetches() - before; got != 1 {
		t.Fatalf("rotation caused %d JWKS fetches, want 1", got)
	}
}

func TestSetPicksIssuerByIssAndUsesOnlyItsKeys(t *testing.T) {
	a, b := verifiertest.New(), verifiertest.New()
	defer a.Close()
	defer b.Close()
	ja := newJWT(t, a, func(o *JWTOptions) { o.Name = "a" })
	jb := newJWT(t, b, func(o *JWTOptions) { o.Name = "b" })
	set := NewSet([]Issuer{{"a", a.Issuer(), ja}, {"b", b.Issuer(), jb}}, nil)
	for _, idp := range []*verifiertest.IdP{a, b} {
		p, err := set.Verify(context.Background(), idp.Mint(idp.Claims(aud)))
		if err != nil {
			t.Fatal(err)
		}
		if p.Issuer != idp.Issuer() {
			t.Fatalf("issuer = %q", p.Issuer)
		}
	}
	// iss says a, signed with b's key (whose kid a does not know).
	cross := verifiertest.Sign(b.Signer(), a.Claims(aud), nil)
	if _, err := set.Verify(context.Background(), cross); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("token claiming a, signed by b: err = %v", err)
	}
	if _, err := set.Verify(context.Background(), verifiertest.Sign(a.Signer(), with(a.Claims(aud), "iss", "https://unknown"), nil)); Reason(err) != "issuer not accepted" {
		t.Fatalf("unknown iss: %v", err)
	}
	// Without an introspection issuer, what is not a JWT is a malformed
	// token, not a token of an issuer that is not accepted.
	for _, tok := range []string{"abc.def.ghi", "opaque-token"} {
		if _, err := set.Verify(context.Background(), tok); Reason(err) != reasonMalformedToken {
			t.Fatalf("%q: %v, want %q", tok, Reason(err), reasonMalformedToken)
		}
	}
}

func TestPrePublishedKeyIsPickedUpByBackgroundRefresh(t *testing.T) {
	idp := verifiertest.New()
	defer idp.Close()
	clk := &clock{t: time.Now()}
	j := newJWT(t, idp, func(o *JWTOptions) {
		o.Now = clk.Now
		o.RefreshCooldown = time.Hour // an unknown kid could not cause a fetch
		o.RefreshInterval = time.Minute
	})
	if err := j.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	old := idp.Signer()
	next := idp.Rotate(jose.ES256, false) // published now …
	idp.UseSigner(old)                    // … but not signing yet
	before := idp.JWKSFetches()
	clk.Add(2 * time.Minute)
	if _, err := j.Verify(context.Background(), idp.Mint(idp.Claims(aud))); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for idp.JWKSFetches() == before {
		if time.Now().After(deadline) {
			t.Fatal("keys older than the refresh interval were not refetched")
		}
		time.Sleep(10 * time.Millisecond)
	}
	idp.UseSigner(next)
	var err error
	for time.Now().Before(deadline) { // the fetch may still be landing
		if _, err = j.Verify(context.Background(), idp.Mint(idp.Claims(aud))); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the pre-published key is not trusted after the refresh: %v", err)
}

func TestWithdrawnKeyIsNeverTrustedAgain(t *testing.T) {
	idp := verifiertest.New()
	defer idp.Close()
	clk := &clock{t: time.Now()}
	j := newJWT(t, idp, func(o *JWTOptions) { o.Now = clk.Now; o.RefreshCooldown = time.Second })
	old := idp.Signer()
	noKid := func(k *verifiertest.Key) string {
		anon := *k
		anon.ID = "" // a token without kid is tried against every trusted key
		return verifiertest.Sign(&anon, idp.Claims(aud), nil)
	}
	for _, tok := range []string{idp.Mint(idp.Claims(aud)), noKid(old)} {
		if _, err := j.Verify(context.Background(), tok); err != nil {
			t.Fatalf("before the withdrawal: %v", err)
		}
	}
	idp.Rotate(jose.ES256, true)                          // the old key leaves the JWKS …
	if err := j.Start(context.Background()); err != nil { // … and a refresh sees it
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"with kid": verifiertest.Sign(old, idp.Claims(aud), nil), "without kid": noKid(old)} {
		if _, err := j.Verify(context.Background(), tok); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("%s: a token signed by the withdrawn key: %v", name, err)
		}
	}
	if _, err := j.Verify(context.Background(), idp.Mint(idp.Claims(aud))); err != nil {
		t.Fatalf("new key: %v", err)
	}
}
