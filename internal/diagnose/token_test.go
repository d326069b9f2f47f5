package diagnose

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokengate/tokengate/verifier/verifiertest"
)

// TestCheckTokenExplains runs `tokengate check --token` on real tokens of
// a real issuer (discovery and JWKS over HTTP) and asserts the decision,
// the exit status and the exact explanation of each refusal reason.
func TestCheckTokenExplains(t *testing.T) {
	idp := verifiertest.New()
	defer idp.Close()
	in := verifiertest.NewIntrospector()
	defer in.Close()
	in.Add("opaque-good", verifiertest.ActiveClaims("webhooks:write", time.Hour))
	path := writeConfig(t, fmt.Sprintf(`
upstream: http://127.0.0.1:9
issuers:
  - name: idp
    issuer: %s
    audiences: [https://hooks.example.com]
  - name: partner
    audiences: [https://hooks.example.com]
    introspection: { url: %s, client_id: %s, client_secret: %q }
routes:
  - name: aftership
    path_prefix: /hooks
    methods: [POST]
    require: { scopes: ["webhooks:write"] }
`, idp.Issuer(), in.URL(), in.ClientID, in.ClientSecret))
	const aud = "https://hooks.example.com"
	claims := func(edit func(map[string]any)) map[string]any {
		c := idp.Claims(aud, "webhooks:write")
		if edit != nil {
			edit(c)
		}
		return c
	}
	stranger := verifiertest.NewKey(jose.RS256) // never published
	tests := []struct {
		name  string
		token string
		route []string
		code  int
		want  []string // each a line (or the start of one) of the output
	}{
		{
			name: "valid", token: idp.Mint(claims(nil)), code: 0,
			want: []string{
				`request  POST /hooks → route "aftership" (path_prefix /hooks)`,
				fmt.Sprintf(`  ✓ iss %q is issuer "idp"`, idp.Issuer()),
				fmt.Sprintf(`  ✓ kid %q is in the JWKS fetched 0 s ago`, idp.Signer().ID),
				`  ✓ aud ["https://hooks.example.com"] includes one of ["https://hooks.example.com"]`,
				`  ✓ scope: token grants [webhooks:write], route needs [webhooks:write]`,
				`decision FORWARDED: the upstream would receive this request`,
			},
		},
		{
			name:  "trailing slash",
			token: idp.Mint(claims(func(c map[string]any) { c["iss"] = idp.Issuer() + "/" })), code: 1,
			want: []string{
				fmt.Sprintf(`  ✗ iss "%s/" ≠ configured %q (they differ only by a trailing slash)`, idp.Issuer(), idp.Issuer()),
				`decision REFUSED: 401 invalid_token "issuer not accepted"`,
			},
		},
		{
			name:  "empty aud",
			token: idp.Mint(claims(func(c map[string]any) { c["aud"] = []string{} })), code: 1,
			want: []string{
				`  ✗ aud [] — the token names no audience; issuer "idp" needs one of ["https://hooks.example.com"]; Hydra and Auth0 add aud only when the client requests audience=... in its token request (and, in Hydra, the client is allowed that audience)`,
				`decision REFUSED: 401 invalid_token "audience not accepted"`,
			},
		},
		{
			name:  "missing scope",
			token: idp.Mint(idp.Claims(aud, "webhooks:read", "orders:read")), route: []string{"POST", "/hooks/aftership"}, code: 1,
			want: []string{
				`request  POST /hooks/aftership → route "aftership" (path_prefix /hooks)`,
				`  ✗ scope: token grants [webhooks:read orders:read], route needs [webhooks:write] (missing: webhooks:write)`,
				`decision REFUSED: 403 insufficient_scope "the token does not grant what this route requires"`,
			},
		},
		{
			name:  "unknown kid",
			token: verifiertest.Sign(stranger, claims(nil), nil), code: 1,
			want: []string{
				fmt.Sprintf(`  ✗ kid %q not in the JWKS fetched 0 s ago (it holds `, stranger.ID),
				`decision REFUSED: 401 invalid_token "unknown signing key"`,
			},
		},
		{
			name: "expired",
			token: idp.Mint(claims(func(c map[string]any) {
				c["iat"] = time.Now().Add(-2 * time.Hour).Unix()
				c["exp"] = time.Now().Add(-time.Hour).Unix()
			})), code: 1,
			want: []string{
				`  ✗ exp `, `: expired 1h0m`, ` ago (clock skew allowed: 30s)`,
				`decision REFUSED: 401 invalid_token "token expired"`,
			},
		},
		{
			name: "introspected", token: "opaque-good", code: 0,
			want: []string{
				fmt.Sprintf(`token    opaque (not a JWT), introspected by issuer "partner" at %s`, in.URL()),
				`  ✓ scope: token grants [webhooks:write], route needs [webhooks:write]`,
				`decision FORWARDED`,
			},
		},
		{
			name: "unknown opaque", token: "opaque-unknown", code: 1,
			want: []string{
				`decision REFUSED: 401 invalid_token`,
			},
		},
		{
			name: "no route", token: idp.Mint(claims(nil)), route: []string{"GET /hooks"}, code: 1,
			want: []string{
				`request  GET /hooks → no route matches`,
				`  ✗ no route matches this method and path`,
				`decision REFUSED: 404 not_found`,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := Token(context.Background(), path, tc.token, strings.Join(tc.route, " "), &out)
			got := out.String()
			code := 0
			if errors.Is(err, ErrRefused) {
				code = 1
			} else if err != nil {
				code = -1
			}
			if code != tc.code {
				t.Errorf("exit %d (%v), want %d", code, err, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("output lacks %q", w)
				}
			}
			if strings.Contains(got, tc.token) || err != nil && strings.Contains(err.Error(), tc.token) {
				t.Error("the token was printed")
			}
			if t.Failed() || testing.Verbose() {
				t.Logf("output:\n%s", got)
			}
		})
	}
}
