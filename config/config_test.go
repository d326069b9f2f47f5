package config

import (
	"errors"
	"fmt"
	"golang.org/x/crypto/bcrypt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const validYAML = `
listen: ":8080"
upstream: "http://127.0.0.1:9000"
issuers:
  - name: idp
    issuer: https://idp.example.com/
    audiences: [https://hooks.example.com]
  - name: partner
    audiences: [https://hooks.example.com]
    introspection:
      url: https://partner.example.com/introspect
      client_id: tokengate
      client_secret: ${SECRET}
routes:
  - path_prefix: /hooks/aftership
    methods: [post]
    require: { issuers: [idp], scopes: [webhooks:write] }
  - path: /health
    public: true
`

func env(kv ...string) Options {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return Options{LookupEnv: func(k string) (string, bool) { v, ok := m[k]; return v, ok }}
}

func TestParseValidAppliesDefaultsAndEnv(t *testing.T) {
	cfg, err := Parse([]byte(validYAML), t.TempDir(), env("SECRET", "s3cr3t"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Upstream.URL != "http://127.0.0.1:9000" {
		t.Errorf("upstream url = %q", cfg.Upstream.URL)
	}
	if got := cfg.Issuers[1].Introspection.ClientSecret; got != "s3cr3t" {
		t.Errorf("client_secret = %q, want expanded env", got)
	}
	if got := cfg.Issuers[1].Introspection.Auth; got != IntrospectionAuthBasic {
		t.Errorf("auth default = %q", got)
	}
	if got := cfg.Issuers[0].ClockSkew.D(); got != DefaultClockSkew {
		t.Errorf("clock skew default = %v", got)
	}
	if got := cfg.Issuers[0].Algorithms; len(got) != len(DefaultAlgorithms) {
		t.Errorf("algorithms default = %v", got)
	}
	if cfg.Routes[0].Methods[0] != "POST" {
		t.Errorf("methods not upper-cased: %v", cfg.Routes[0].Methods)
	}
	if cfg.Cache.MaxTTL.D() != DefaultCacheMaxTTL || cfg.Cache.NegativeTTL.D() != DefaultNegativeTTL {
		t.Errorf("cache defaults: %+v", cfg.Cache)
	}
	if cfg.Upstream.MaxBodySize != DefaultMaxBodyBytes {
		t.Errorf("max body default = %d", cfg.Upstream.MaxBodySize)
	}
}

type errCase struct {
	name string
	yaml string
	want []string // each must appear in the error
}

func (c errCase) run(t *testing.T) {
	t.Helper()
	_, err := Parse([]byte(c.yaml), t.TempDir(), env("SECRET", "x"))
	if err == nil {
		t.Fatalf("no error, want %q", c.want)
	}
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %T is not *config.Error: %v", err, err)
	}
	for _, w := range c.want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not contain %q:\n%v", w, err)
		}
	}
}

func TestValidationErrorsNameTheirPath(t *testing.T) {
	base := "upstream: http://127.0.0.1:9000\n"
	idp := "issuers:\n  - name: idp\n    issuer: https://idp.example.com/\n    audiences: [a]\n"
	route := "routes:\n  - path: /hooks\n"
	cases := []errCase{
		{"unknown top key", base + idp + route + "listn: ':1'\n", []string{"listn: unknown field \"listn\"", "did you mean \"listen\"", "(line 8)"}},
		{"unknown nested key", base + "issuers:\n  - name: idp\n    issuer: https://i/\n    audiences: [a]\n    audience: b\n" + route, []string{"issuers[0].audience: unknown field", "(line 6)"}},
		{"unknown issuer in route", base + idp + "routes:\n  - path: /a\n  - path: /b\n  - path: /c\n    require: { issuers: [idp2] }\n", []string{`routes[2].require.issuers: unknown issuer "idp2" (did you mean "idp"?)`}},
		{"unknown issuer far from any name", base + idp + "routes:\n  - path: /c\n    require: { issuers: [partner] }\n", []string{`routes[0].require.issuers: unknown issuer "partner" (line`}},
		{"missing upstream", idp + route, []string{"upstream.url: required"}},
		{"bad upstream", "upstream: ftp://x\n" + idp + route, []string{"upstream.url: must be an absolute http or https URL"}},
		{"no routes", base + idp, []string{"routes: at least one route"}},
		{"path and prefix", base + idp + "routes:\n  - path: /a\n    path_prefix: /b\n", []string{"routes[0]: set only one of path and path_prefix"}},
		{"unclean path", base + idp + "routes:\n  - path_prefix: /hooks/../admin\n", []string{"routes[0].path_prefix: must be a clean path"}},
		{"relative path", base + idp + "routes:\n  - path: hooks\n", []string{"routes[0].path: must start with /"}},
		{"public with require", base + idp + "routes:\n  - path: /a\n    public: true\n    require: { scopes: [x] }\n", []string{"routes[0].require: a public route needs no token"}},
		{"no audience", base + "issuers:\n  - name: idp\n    issuer: https://i/\n" + route, []string{"issuers[0].audiences: required"}},
		{"hs256 allowed", base + "issuers:\n  - name: idp\n    issuer: https://i/\n    audiences: [a]\n    algorithms: [RS256, HS256, none]\n" + route, []string{"issuers[0].algorithms: HS256 is a shared-secret algorithm", `issuers[0].algorithms: "none" is never accepted`}},
		{"duplicate issuer", base + idp + "  - name: idp\n    issuer: https://j/\n    audiences: [a]\n" + route, []string{`issuers[1].name: duplicate issuer name "idp"`}},
		{"jwt issuer without iss", base + "issuers:\n  - name: idp\n    jwks_url: https://i/jwks\n    audiences: [a]\n" + route, []string{"issuers[0].issuer: required for a JWT issuer"}},
		{"introspection incomplete", base + "issuers:\n  - name: p\n    introspection: { url: 'not a url', auth_method: digest }\n" + route, []string{"issuers[0].introspection.url: must be an absolute https URL", "issuers[0].introspection.client_id: required", "issuers[0].introspection.client_secret: required", "issuers[0].introspection.auth_method: must be"}},
		{"introspection without audiences", base + "issuers:\n  - name: p\n    introspection: { url: 'https://p/i', client_id: a, client_secret: b }\n" + route, []string{"issuers[0].audiences: required"}},
		{"header to strip is no header name", base + idp + route + "headers: { strip: ['bad header'] }\n", []string{"headers.strip[0]: \"bad header\" is not a valid header name"}},
		{"client scope with a space", base + idp + route + "token_endpoint: { issuer: 'https://h', clients: [{ client_id: a, client_secret_hash: '$2a$04$abcdefghijklmnopqrstuu5p6Qw2zQ7kG0bFvNf1b3fWy8a0J6Jxa', scopes: ['a b'] }] }\n", []string{"token_endpoint.clients[0].scopes: invalid scope \"a b\""}},
		{"two introspection issuers", base + "issuers:\n  - name: p\n    introspection: { url: 'https://p/i', client_id: a, client_secret: b }\n  - name: q\n    introspection: { url: 'https://q/i', client_id: a, client_secret: b }\n" + route, []string{"issuers[1]: only one introspection issuer"}},
		{"bad duration", base + idp + route + "shutdown_grace: 30\n", []string{"shutdown_grace: invalid duration \"30\""}},
		{"bad int", base + idp + route + "cache: { max_entries: lots }\n", []string{"cache.max_entries: expected an integer"}},
		{"bad bool", base + idp + "routes:\n  - path: /a\n    public: maybe\n", []string{"routes[0].public: expected true or false"}},
		{"unset env", base + idp + route + "listen: ${NOPE}\n", []string{"listen: environment variable NOPE is not set"}},
		{"same admin port", base + idp + route + "listen: '127.0.0.1:9090'\n", []string{"admin_listen: must differ from listen"}},
		{"bad size", idp + route + "upstream: { url: 'http://x', max_body_size: 10 parsecs }\n", []string{"upstream.max_body_size: invalid size"}},
		{"list where mapping", base + idp + "routes: { path: /a }\n", []string{"routes: expected a list"}},
		{"plain client secret", base + idp + route + "token_endpoint:\n  issuer: https://h/\n  clients:\n    - client_id: aftership\n      client_secret: hunter2\n      scopes: [a]\n", []string{"token_endpoint.clients[0].client_secret: plain-text secrets are refused", "token_endpoint.clients[0].client_secret_hash: required"}},
		{"not bcrypt", base + idp + route + "token_endpoint:\n  issuer: https://h/\n  clients:\n    - client_id: a\n      client_secret_hash: abc\n      scopes: [s]\n      default_scopes: [t]\n", []string{"client_secret_hash: not a bcrypt hash", `token_endpoint.clients[0].default_scopes: "t" is not in scopes`}},
	}
	for _, c := range cases {
		t.Run(c.name, c.run)
	}
}

func TestEveryErrorReportedAtOnce(t *testing.T) {
	y := `
upstream: ftp://nope
issuers:
  - name: idp
    issuer: not-a-url
    bogus: 1
routes:
  - path: /a
    require: { issuers: [idp2] }
`
	_, err := Parse([]byte(y), t.TempDir(), env())
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("want *Error, got %v", err)
	}
	if len(ce.Errs) < 5 {
		t.Fatalf("want at least 5 problems, got %d:\n%v", len(ce.Errs), err)
	}
	for _, w := range []string{"issuers[0].bogus", "upstream.url", "issuers[0].issuer", "issuers[0].audiences", `routes[0].require.issuers: unknown issuer "idp2"`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in:\n%v", w, err)
		}
	}
}

func TestSecretFileIndirection(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	y := `
upstream: http://u
issuers:
  - name: p
    audiences: [hooks]
    introspection: { url: https://p/i, client_id: a, client_secret_file: secret }
routes: [{ path: /a }]
`
	cfg, err := Parse([]byte(y), dir, env())
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Issuers[0].Introspection.ClientSecret; got != "from-file" {
		t.Fatalf("secret = %q", got)
	}
	_, err = Parse([]byte(strings.Replace(y, "client_secret_file: secret", "client_secret_file: missing", 1)), dir, env())
	if err == nil || !strings.Contains(err.Error(), "issuers[0].introspection.client_secret_file") {
		t.Fatalf("missing file error = %v", err)
	}
}

func TestEnvExpansionCannotInjectYAML(t *testing.T) {
	y := "upstream: ${UP}\nissuers: [{name: idp, issuer: 'https://i/', audiences: [a]}]\nroutes: [{ path: /a }]\n"
	cfg, err := Parse([]byte(y), t.TempDir(), env("UP", "http://u\nroutes: []"))
	if err == nil {
		t.Fatalf("a newline in an env value became config: %+v", cfg.Upstream)
	}
	cfg, err = Parse([]byte(y), t.TempDir(), env("UP", "http://u:1"))
	if err != nil || cfg.Upstream.URL != "http://u:1" || len(cfg.Routes) != 1 {
		t.Fatalf("cfg=%+v err=%v", cfg, err)
	}
}

func TestDurationsAndSizes(t *testing.T) {
	y := `
upstream: { url: http://u, max_body_size: 2MiB, response_timeout: 1m30s, dial_timeout: "${DT:-2s}" }
issuers: [{name: idp, issuer: 'https://i/', audiences: [a], clock_skew: 0s}]
cache: { negative_ttl: 0s }
routes: [{ path: /a }]
`
	cfg, err := Parse([]byte(y), t.TempDir(), env())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Upstream.MaxBodySize != 2<<20 || cfg.Upstream.ResponseTimeout.D() != 90*time.Second || cfg.Upstream.DialTimeout.D() != 2*time.Second {
		t.Errorf("upstream = %+v", cfg.Upstream)
	}
	if cfg.Issuers[0].ClockSkew.D() != 0 {
		t.Errorf("explicit zero skew replaced by default: %v", cfg.Issuers[0].ClockSkew.D())
	}
	if cfg.Cache.NegativeTTL.D() != 0 {
		t.Errorf("explicit zero negative ttl replaced by default")
	}
}

func TestClientSecretFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "aftership.secret"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	y := `
upstream: http://u
token_endpoint:
  issuer: https://h
  clients: [{ client_id: aftership, client_secret_file: aftership.secret, scopes: [s] }]
routes: [{ path: /a }]
`
	cfg, err := Parse([]byte(y), dir, env())
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.TokenEndpoint.Clients[0].SecretFromFile; got != "s3cret" {
		t.Fatalf("secret from file = %q", got)
	}
	both := strings.Replace(y, "client_secret_file: aftership.secret", "client_secret_file: aftership.secret, client_secret_hash: '$2a$04$eSqaEAiMVOidFUUkz5EnHeodyG2rDjXGJE9QuTd7q1SFJLaz6XEQO'", 1)
	if _, err := Parse([]byte(both), dir, env()); err == nil || !strings.Contains(err.Error(), "client_secret_file: set only one") {
		t.Fatalf("hash and secret file together: %v", err)
	}
}

// TestIntrospectionAuth: auth none|basic|post, auth_method as the older
// spelling, and the combinations refused.
func TestIntrospectionAuth(t *testing.T) {
	base := `
upstream: http://127.0.0.1:9000
issuers:
  - name: hydra
    audiences: [https://hooks.example.com]
    introspection:
      url: http://hydra-admin:4445/admin/oauth2/introspect
%s
routes: [{ path: /hooks }]
`
	for _, tc := range []struct {
		name, block, want, err string
	}{
		{"none", "      auth: none", IntrospectionAuthNone, ""},
		{"default basic", "      client_id: tg\n      client_secret: ${SECRET}", IntrospectionAuthBasic, ""},
		{"post", "      auth: post\n      client_id: tg\n      client_secret: ${SECRET}", IntrospectionAuthPost, ""},
		{"older spelling", "      auth_method: client_secret_post\n      client_id: tg\n      client_secret: ${SECRET}", IntrospectionAuthPost, ""},
		{"none with credentials", "      auth: none\n      client_id: tg\n      client_secret: ${SECRET}", "", "none sends no client credentials"},
		{"both spellings disagree", "      auth: none\n      auth_method: client_secret_post", "", "set only one of auth and auth_method"},
		{"unknown", "      auth: digest\n      client_id: tg\n      client_secret: ${SECRET}", "", "must be basic, post or none"},
		{"basic without credentials", "      auth: basic", "", "client_id: required (or auth: none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(fmt.Sprintf(base, tc.block)), t.TempDir(), env("SECRET", "s"))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Issuers[0].Introspection.Auth; got != tc.want {
				t.Errorf("auth = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTokenEndpointBodyReadTimeout(t *testing.T) {
	const y = `
upstream: http://u
body_read_timeout: 7s
token_endpoint:
  issuer: https://h
  clients: [{ client_id: c, client_secret_hash: '$2a$04$eSqaEAiMVOidFUUkz5EnHeodyG2rDjXGJE9QuTd7q1SFJLaz6XEQO', scopes: [s] }]
%s
routes: [{ path: /a }]
`
	for _, tc := range []struct {
		name, extra string
		want        time.Duration
	}{
		{"defaults to body_read_timeout", "", 7 * time.Second},
		{"its own", "  body_read_timeout: 2s", 2 * time.Second},
	} {
		cfg, err := Parse([]byte(fmt.Sprintf(y, tc.extra)), t.TempDir(), env())
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.TokenEndpoint.BodyReadTimeout.D(); got != tc.want {
			t.Errorf("%s: token_endpoint.body_read_timeout = %v, want %v", tc.name, got, tc.want)
		}
	}
	if _, err := Parse([]byte(fmt.Sprintf(y, "  body_read_timeout: -1s")), t.TempDir(), env()); err == nil || !strings.Contains(err.Error(), "token_endpoint.body_read_timeout") {
		t.Fatalf("negative: %v", err)
	}
}

func TestMissingVariableIsReportedOnceWithItsLine(t *testing.T) {
	y := "upstream: http://127.0.0.1:9000\ntoken_endpoint:\n  issuer: http://localhost:8080\n  clients:\n    - client_id: a\n      client_secret_hash: ${NOPE_HASH}\n      scopes: [w]\nroutes:\n  - path: /a\n"
	_, err := Parse([]byte(y), ".", Options{LookupEnv: func(string) (string, bool) { return "", false }})
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v", err)
	}
	if len(ce.Errs) != 1 || ce.Errs[0].Error() != "token_endpoint.clients[0].client_secret_hash: environment variable NOPE_HASH is not set (line 6)" {
		t.Fatalf("problems = %q, want the unset variable once, with its line", ce.Errs)
	}
}

func TestTokenEndpointClockSkew(t *testing.T) {
	base := "upstream: http://127.0.0.1:9000\nroutes:\n  - path: /a\ntoken_endpoint:\n  issuer: http://localhost:8080\n  clients: [{ client_id: a, client_secret_hash: \"$2a$04$eSqaEAiMVOidFUUkz5EnHeodyG2rDjXGJE9QuTd7q1SFJLaz6XEQO\", scopes: [w] }]\n"
	for _, c := range []struct {
		extra string
		want  time.Duration
	}{{"", DefaultClockSkew}, {"  clock_skew: 0s\n", 0}, {"  clock_skew: 5s\n", 5 * time.Second}} {
		cfg, err := Parse([]byte(base+c.extra), ".", Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.TokenEndpoint.ClockSkew.D(); got != c.want {
			t.Errorf("%q: clock_skew = %v, want %v", c.extra, got, c.want)
		}
	}
}

func TestClientHashesOfTwoBcryptCostsAreRefused(t *testing.T) {
	const cost4 = "$2a$04$eSqaEAiMVOidFUUkz5EnHeodyG2rDjXGJE9QuTd7q1SFJLaz6XEQO"
	cost5, err := bcrypt.GenerateFromPassword([]byte("s"), 5)
	if err != nil {
		t.Fatal(err)
	}
	y := "upstream: http://127.0.0.1:9000\nroutes:\n  - path: /a\ntoken_endpoint:\n  issuer: http://localhost:8080\n  clients:\n" +
		"    - { client_id: a, client_secret_hash: \"" + cost4 + "\", scopes: [w] }\n" +
		"    - { client_id: b, client_secret_hash: \"" + string(cost5) + "\", scopes: [w] }\n"
	_, err = Parse([]byte(y), ".", Options{})
	if err == nil || !strings.Contains(err.Error(), "token_endpoint.clients[1].client_secret_hash: bcrypt cost 5, but token_endpoint.clients[0] has cost 4") {
		t.Fatalf("err = %v", err)
	}
}

func TestRedisBlockValidation(t *testing.T) {
	base := "upstream: http://127.0.0.1:9\nissuers:\n  - name: a\n    issuer: https://idp.example\n    audiences: [x]\nroutes:\n  - path_prefix: /r\n    require: { issuers: [a] }\n"
	cases := []struct {
		name, yaml string
		env        map[string]string
		want       string // substring of the error, "" for valid
	}{
		{"valid", "redis:\n  url: redis://127.0.0.1:6379/0\n", nil, ""},
		{"env key", "redis:\n  url: redis://127.0.0.1:6379/0\n  token_key: ${K}\n", map[string]string{"K": "x"}, ""},
		{"no url", "redis:\n  timeout: 1s\n", nil, "redis.url"},
		{"bad scheme", "redis:\n  url: http://127.0.0.1:6379\n", nil, "redis:// or rediss://"},
		{"literal password", "redis:\n  url: redis://:hunter2@127.0.0.1:6379\n", nil, "from the environment"},
		{"literal key", "redis:\n  url: redis://127.0.0.1:6379\n  token_key: abc\n", nil, "must come from the environment"},
		{"both keys", "redis:\n  url: redis://127.0.0.1:6379\n  token_key: ${K}\n  token_key_file: /k\n", map[string]string{"K": "x"}, "not both"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(base+tc.yaml), t.TempDir(), Options{LookupEnv: func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid config refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
