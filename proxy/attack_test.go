package proxy

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokengate/tokengate/verifier/verifiertest"
)

// attack is one row of the attack table (SECURITY.md). Every row goes end
// to end through a real gate: a real identity provider with real keys, the
// real go-oidc path, and a receiver that records what reaches it.
type attack struct {
	name      string
	method    string
	path      string
	body      string
	headers   func(e *env) []string
	status    int
	challenge string // substring of WWW-Authenticate; "-" for none
	// forwarded, when set, is checked on what the receiver got (header
	// tricks that must pass sanitized); otherwise nothing may reach it.
	forwarded func(t *testing.T, e *env, got seen)
	// or503: an unknown kid may also be answered 503 once the JWKS refetch
	// bucket is empty (the kid may be a key published a moment ago).
	or503 bool
}

func (a attack) run(t *testing.T, e *env) {
	t.Helper()
	before := len(e.up.requests())
	method, path := a.method, a.path
	if method == "" {
		method = http.MethodPost
	}
	if path == "" {
		path = "/hooks/aftership/orders"
	}
	resp := e.do(method, path, a.body, a.headers(e)...)
	if a.or503 && resp.StatusCode == http.StatusServiceUnavailable {
		if resp.Header.Get("Retry-After") == "" || len(e.up.requests()) != before {
			t.Fatalf("503 without Retry-After, or forwarded")
		}
		return
	}
	if resp.StatusCode != a.status {
		t.Fatalf("status = %d, want %d (%s)", resp.StatusCode, a.status, bodyOf(resp))
	}
	wa := resp.Header.Get("WWW-Authenticate")
	if a.challenge == "-" && wa != "" || a.challenge != "-" && !strings.Contains(wa, a.challenge) {
		t.Fatalf("WWW-Authenticate = %q, want %q", wa, a.challenge)
	}
	got := e.up.requests()[before:]
	if a.forwarded == nil {
		if len(got) != 0 {
			t.Fatalf("the receiver got %d request(s)", len(got))
		}
		return
	}
	if len(got) != 1 {
		t.Fatalf("the receiver got %d request(s), want 1", len(got))
	}
	a.forwarded(t, e, got[0])
}

const (
	algRefused     = `error_description="malformed token or algorithm not allowed"`
	unknownKey     = `error_description="unknown signing key"`
	invalidToken   = `error="invalid_token"`
	invalidRequest = `error="invalid_request"`
	bareChallenge  = `Bearer realm="tokengate"`
)

func b64url(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// spoofable are the headers no client may send to the receiver (issue:
// method override, URL rewrite, client address, remote user).
var spoofable = []string{
	"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "X-Original-URL", "X-Rewrite-URL",
	"X-Original-Method", "X-Real-IP", "True-Client-IP", "X-Client-IP", "CF-Connecting-IP",
	"X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Ssl", "X-Forwarded-Scheme", "X-Forwarded-Server",
	"Client-IP", "X-Cluster-Client-IP", "Forwarded-For", "X-Original-Forwarded-For", "X-ProxyUser-Ip",
	"X-Envoy-External-Address", "Fastly-Client-IP", "X-Forwarded-Uri", "X-Forwarded-By",
	"Remote-User", "X-Remote-User", "X-Custom-Stripped", "X-Tokengate-Delivery-Id", "X-Tokengate-Attempt",
}

func sanitized(t *testing.T, e *env, got seen) {
	t.Helper()
	if got.Header.Get("Authorization") != "" {
		t.Error("Authorization reached the receiver")
	}
	if v := got.Header.Values("X-Auth-Subject"); len(v) != 1 || v[0] != "aftership" {
		t.Errorf("X-Auth-Subject = %q, want only the verified subject", v)
	}
	if got.Header.Get("X-Auth-Role") != "" || got.Header.Get("X_auth_role") != "" {
		t.Error("a client-sent X-Auth-* header reached the receiver")
	}
	if xff := got.Header.Values("X-Forwarded-For"); len(xff) != 1 || xff[0] != "127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q, want the peer only", xff)
	}
	if got.Header.Get("X-Forwarded-Host") == "evil.example" || got.Header.Get("X-Forwarded-Proto") == "https" || got.Header.Get("Forwarded") != "" {
		t.Errorf("client forwarding headers kept: %v", got.Header)
	}
	for _, h := range spoofable {
		if got.Header.Get(h) != "" || got.Header.Get(strings.ReplaceAll(h, "-", "_")) != "" {
			t.Errorf("%s reached the receiver", h)
		}
	}
	if got.Method != http.MethodPost {
		t.Errorf("method = %s", got.Method)
	}
}

func TestAttackTable(t *testing.T) {
	e := newEnv(t, "")
	now := time.Now()
	good := func(e *env) map[string]any { return e.idp.Claims(audience, "webhooks:write") }
	tok := func(f func(e *env) string) func(e *env) []string {
		return func(e *env) []string { return bearer(f(e)) }
	}
	pubPEM := func(e *env) []byte {
		der, _ := x509.MarshalPKIXPublicKey(e.idp.Signer().Private.Public())
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	pubJWK := func(e *env) []byte { b, _ := json.Marshal(e.idp.Signer().Public()); return b }
	attacker := verifiertest.NewKey(jose.RS256)

	var rows []attack
	for _, spelling := range []string{"none", "None", "NONE", "nOnE"} {
		rows = append(rows, attack{name: "alg " + spelling, headers: tok(func(e *env) string {
			return verifiertest.Unsigned(map[string]any{"alg": spelling, "typ": "JWT", "kid": e.idp.Signer().ID}, good(e), "")
		}), status: 401, challenge: algRefused})
	}
	for _, alg := range []jose.SignatureAlgorithm{jose.HS256, jose.HS384} {
		rows = append(rows,
			attack{name: string(alg) + " keyed with the public key PEM", headers: tok(func(e *env) string {
				return verifiertest.SignHMAC(alg, pubPEM(e), e.idp.Signer().ID, good(e))
			}), status: 401, challenge: algRefused},
			attack{name: string(alg) + " keyed with the public JWK bytes", headers: tok(func(e *env) string {
				return verifiertest.SignHMAC(alg, pubJWK(e), e.idp.Signer().ID, good(e))
			}), status: 401, challenge: algRefused})
	}
	for _, h := range []string{"jwk", "jku", "x5u", "x5c"} {
		rows = append(rows, attack{name: "key in header " + h + " is ignored", headers: tok(func(e *env) string {
			pub := attacker.Public()
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "attacker"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, attacker.Private.Public(), attacker.Private)
			if err != nil {
				panic(err)
			}
			val := map[string]any{
				"jwk": pub, "jku": "http://127.0.0.1:1/jwks", "x5u": "http://127.0.0.1:1/cert",
				"x5c": []string{base64.StdEncoding.EncodeToString(der)},
			}[h]
			return verifiertest.Sign(attacker, good(e), map[string]any{h: val})
		}), status: 401, challenge: unknownKey, or503: true})
	}
	for _, kid := range []string{"../../../../dev/null", "' OR '1'='1", "$(id)", "\x00", "kid\r\nX-Injected: 1"} {
		rows = append(rows, attack{name: "kid " + strings.ToValidUTF8(url.QueryEscape(kid), ""), headers: tok(func(e *env) string {
			k := *attacker
			k.ID = kid
			return verifiertest.Sign(&k, good(e), nil)
		}), status: 401, challenge: unknownKey, or503: true})
	}
	rows = append(rows,
		attack{name: "unknown crit header", headers: tok(func(e *env) string {
			return verifiertest.Sign(e.idp.Signer(), good(e), map[string]any{"crit": []string{"urn:x"}, "urn:x": true})
		}), status: 401, challenge: `error_description="unsupported critical header"`},
		attack{name: "empty crit header", headers: tok(func(e *env) string {
			return verifiertest.Sign(e.idp.Signer(), good(e), map[string]any{"crit": []string{}})
		}), status: 401, challenge: `error_description="unsupported critical header"`},
		attack{name: "EXP instead of exp", headers: tok(func(e *env) string {
			c := good(e)
			c["EXP"], c["exp"] = c["exp"], nil
			delete(c, "exp")
			return verifiertest.Sign(e.idp.Signer(), c, nil)
		}), status: 401, challenge: `error_description="token has no expiry"`},
		attack{name: "aud given twice", headers: tok(func(e *env) string {
			raw := fmt.Sprintf(`{"iss":%q,"sub":"s","scope":"webhooks:write","exp":%d,"aud":"https://elsewhere","aud":%q}`, e.idp.Issuer(), time.Now().Add(time.Hour).Unix(), audience)
			return verifiertest.SignRaw(e.idp.Signer(), []byte(raw), nil)
		}), status: 401, challenge: `error_description="malformed claims"`},
		attack{name: "JWE (five parts)", headers: tok(func(e *env) string {
			return b64url(map[string]any{"alg": "RSA-OAEP", "enc": "A256GCM"}) + ".a.b.c.d"
		}), status: 401, challenge: invalidToken},
		attack{name: "nested JWT (cty JWT, payload is a JWS)", headers: tok(func(e *env) string {
			inner := e.token("webhooks:write")
			s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: e.idp.Signer().Private},
				(&jose.SignerOptions{}).WithContentType("JWT").WithHeader("kid", e.idp.Signer().ID))
			obj, _ := s.Sign([]byte(inner))
			out, _ := obj.CompactSerialize()
			return out
		}), status: 401, challenge: `error_description="malformed claims"`},
		attack{name: "64 KB token", headers: tok(func(*env) string { return strings.Repeat("A", 64<<10) }), status: 401, challenge: `error_description="token too large"`},
		attack{name: "token of only dots", headers: tok(func(*env) string { return "......" }), status: 401, challenge: invalidToken},
		attack{name: "non-ASCII bytes", headers: func(*env) []string { return []string{"Authorization", "Bearer eyJ\xff\xfe.x.y"} }, status: 400, challenge: `error_description="the bearer token has characters RFC 6750 does not allow"`},
		attack{name: "two Authorization headers", headers: func(e *env) []string {
			return []string{"Authorization", "Bearer " + e.token("webhooks:write"), "Authorization", "Bearer garbage"}
		}, status: 400, challenge: `error_description="more than one Authorization header"`},
		attack{name: "Bearer and a tab", headers: func(e *env) []string { return []string{"Authorization", "Bearer\t" + e.token("webhooks:write")} }, status: 400, challenge: `error_description="Bearer must be followed by one or more spaces"`},
		attack{name: "Bearer and two spaces is RFC 6750 1*SP: parsed canonically", headers: func(e *env) []string {
			return []string{"Authorization", "Bearer  " + e.token("webhooks:write")}
		}, status: 200, challenge: "-", forwarded: sanitized},
		attack{name: "token in ?access_token=", path: "/hooks/aftership/orders?access_token=x", headers: tok(func(e *env) string { return e.token("webhooks:write") }), status: 400, challenge: invalidRequest},
		attack{name: "token only in ?access_token=", path: "/hooks/aftership/orders?access_token=x", headers: func(*env) []string { return nil }, status: 400, challenge: invalidRequest},
		attack{name: "token only in a form body", body: "access_token=" + "x", headers: func(e *env) []string {
			return []string{"Content-Type", "application/x-www-form-urlencoded"}
		}, status: 401, challenge: bareChallenge},
		attack{name: "Basic credentials", headers: func(*env) []string { return []string{"Authorization", "Basic YWZ0ZXJzaGlwOnNlY3JldA=="} }, status: 401, challenge: bareChallenge},
		attack{name: "path /hooks/../admin", path: "/hooks/../admin", headers: tok(func(e *env) string { return e.token("webhooks:write") }), status: 404, challenge: "-"},
		attack{name: "path %2e%2e", path: "/hooks/aftership/%2e%2e/%2e%2e/admin", headers: tok(func(e *env) string { return e.token("webhooks:write") }), status: 404, challenge: "-"},
		attack{name: "path // is cleaned before matching and forwarding", path: "//hooks//aftership//orders", headers: tok(func(e *env) string { return e.token("webhooks:write") }), status: 200, challenge: "-",
			forwarded: func(t *testing.T, e *env, got seen) {
				if got.Path != "/hooks/aftership/orders" {
					t.Fatalf("forwarded path %q", got.Path)
				}
			}},
		attack{name: "path %2F", path: "/hooks%2Faftership/orders", headers: tok(func(e *env) string { return e.token("webhooks:write") }), status: 400, challenge: invalidRequest},
		attack{name: "path %5C", path: "/hooks/aftership%5C..%5C..%5Cadmin", headers: tok(func(e *env) string { return e.token("webhooks:write") }), status: 400, challenge: invalidRequest},
		attack{name: "path with a trailing dot", path: "/hooks/aftership.", headers: tok(func(e *env) string { return e.token("webhooks:write") }), status: 404, challenge: "-"},
		attack{name: "method override to reach a POST-only route", method: http.MethodGet, headers: func(e *env) []string {
			return []string{"Authorization", "Bearer " + e.token("webhooks:write"), "X-HTTP-Method-Override", "POST"}
		}, status: 404, challenge: "-"},
		attack{name: "client identity, forwarding and override headers", headers: func(e *env) []string {
			return []string{"Authorization", "Bearer " + e.token("webhooks:write"),
				"X-Auth-Subject", "admin", "X-Auth-Role", "admin", "X_Auth_Role", "admin",
				"X-Forwarded-For", "10.0.0.1", "X-Forwarded-Host", "evil.example", "X-Forwarded-Proto", "https",
				"Forwarded", "for=10.0.0.1", "X-HTTP-Method-Override", "DELETE", "X-Method-Override", "DELETE"}
		}, status: 200, challenge: "-", forwarded: sanitized},
		attack{name: "Connection names tokengate's own headers", headers: func(e *env) []string {
			return []string{"Authorization", "Bearer " + e.token("webhooks:write"), "Connection", "X-Auth-Subject, X-Forwarded-For"}
		}, status: 200, challenge: "-", forwarded: sanitized},
		attack{name: "expired one second past the skew", headers: tok(func(e *env) string {
			return e.idp.Mint(with(good(e), "exp", now.Add(-31*time.Second).Unix()))
		}), status: 401, challenge: `error_description="token expired"`},
		attack{name: "exp as a string", headers: tok(func(e *env) string {
			return e.idp.Mint(with(good(e), "exp", "99999999999"))
		}), status: 401, challenge: `error_description="malformed claims"`},
		attack{name: "exp as a float, past", headers: tok(func(e *env) string {
			return e.idp.Mint(with(good(e), "exp", float64(now.Add(-time.Hour).Unix())+0.9))
		}), status: 401, challenge: `error_description="token expired"`},
		attack{name: "exp as a float, future: a valid NumericDate", headers: tok(func(e *env) string {
			return e.idp.Mint(with(good(e), "exp", float64(now.Add(time.Hour).Unix())+0.5))
		}), status: 200, challenge: "-", forwarded: sanitized},
	)
	for _, a := range rows {
		t.Run(a.name, func(t *testing.T) { a.run(t, e) })
	}
}
