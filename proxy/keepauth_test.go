package proxy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/signature"
)

// signedRoutes are a route taking either credential and one taking both,
// each keeping Authorization; they follow baseRoutes' six routes.
const signedRoutes = `  - name: either
    path: /hooks/either
    auth: any
    keep_authorization: true
    signature: { scheme: github, secrets: ["${TG_TEST_GH}"], replay: false }
  - name: both
    path: /hooks/both
    auth: all
    keep_authorization: true
    signature: { scheme: github, secrets: ["${TG_TEST_GH}"], replay: false }
`

const ghSecret = "github-secret"

func githubSignature(body string) string {
	m := hmac.New(sha256.New, []byte(ghSecret))
	m.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func TestKeepAuthorizationOnlyForTheBearerVerifiedOnThisRequest(t *testing.T) {
	t.Setenv("TG_TEST_GH", ghSecret)
	sig, err := signature.New(signature.Options{Scheme: signature.GitHub, Secrets: []string{ghSecret}})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvOpts(t, signedRoutes, Options{Signatures: []SignatureVerifier{nil, nil, nil, nil, nil, nil, sig, sig}})
	forged := b64url(map[string]any{"alg": "none", "typ": "JWT"}) + "." + b64url(map[string]any{"sub": "admin", "scope": "admin"}) + "."
	good := e.token("webhooks:write")
	const body = `{"event":"x"}`
	cases := []struct {
		name, path, auth string
		signed           bool
		wantAuth         string // what the receiver may see; "" for nothing
	}{
		{"any: signed, with a forged bearer", "/hooks/either", "Bearer " + forged, true, ""},
		{"any: signed, with a valid bearer it did not check", "/hooks/either", "Bearer " + good, true, ""},
		{"any: signed, with another scheme", "/hooks/either", "Basic YWRtaW46YWRtaW4=", true, ""},
		{"any: bearer only, verified", "/hooks/either", "Bearer " + good, false, "Bearer " + good},
		{"all: bearer and signature, both verified", "/hooks/both", "Bearer " + good, true, "Bearer " + good},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(e.up.requests())
			h := []string{"Authorization", c.auth}
			if c.signed {
				h = append(h, "X-Hub-Signature-256", githubSignature(body))
			}
			resp := e.do(http.MethodPost, c.path, body, h...)
			got := e.up.requests()[before:]
			if resp.StatusCode != http.StatusOK || len(got) != 1 {
				t.Fatalf("status %d (%s), %d forwarded", resp.StatusCode, bodyOf(resp), len(got))
			}
			if a := got[0].Header.Get("Authorization"); a != c.wantAuth {
				t.Fatalf("the receiver got Authorization %s, want %s", TokenID(a), TokenID(c.wantAuth))
			}
		})
	}
}

func TestNoCredentialsNamesWhatTheRouteTakes(t *testing.T) {
	t.Setenv("TG_TEST_GH", ghSecret)
	sig, err := signature.New(signature.Options{Scheme: signature.GitHub, Secrets: []string{ghSecret}})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvOpts(t, signedRoutes, Options{Signatures: []SignatureVerifier{nil, nil, nil, nil, nil, nil, sig, sig}})
	for _, c := range []struct{ path, want string }{
		{"/hooks/either", "a bearer token or a github signature is required"},
		{"/hooks/both", "a bearer token is required"},
	} {
		before := len(e.up.requests())
		resp := e.do(http.MethodPost, c.path, `{}`)
		if b := bodyOf(resp); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(b, c.want) {
			t.Errorf("%s without credentials: %d %s, want 401 %q", c.path, resp.StatusCode, b, c.want)
		}
		if len(e.up.requests()) != before {
			t.Errorf("%s: the receiver got a request without credentials", c.path)
		}
	}
}
