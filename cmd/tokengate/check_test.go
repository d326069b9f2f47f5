package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/verifier/verifiertest"
)

func writeConfig(t *testing.T, y string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tokengate.yaml")
	if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckReportsWrongIssuerURLAndBadRouteInOneRun(t *testing.T) {
	nowhere := httptest.NewServer(http.NotFoundHandler()) // no discovery here
	defer nowhere.Close()
	good := verifiertest.New()
	defer good.Close()
	path := writeConfig(t, fmt.Sprintf(`
upstream: http://127.0.0.1:9000
issuers:
  - name: idp
    issuer: %s/wrong/
    audiences: [https://hooks.example.com]
  - name: good
    issuer: %s
    audiences: [https://hooks.example.com]
routes:
  - path: /hooks/a
    require: { issuers: [idp] }
  - path: /hooks/b
    require: { issuers: [idp2] }
`, nowhere.URL, good.Issuer()))
	var out bytes.Buffer
	err := check(context.Background(), path, &out)
	if err == nil {
		t.Fatalf("check passed:\n%s", out.String())
	}
	for _, want := range []string{
		`routes[1].require.issuers: unknown issuer "idp2"`,
		"issuers[0].issuer: issuer idp: OIDC discovery",
		"2 problem(s)",
		"keys fetched", // the good issuer was probed too
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestCheckPassesAGoodConfig(t *testing.T) {
	idp := verifiertest.New()
	defer idp.Close()
	in := verifiertest.NewIntrospector()
	defer in.Close()
	path := writeConfig(t, fmt.Sprintf(`
upstream: http://127.0.0.1:9000
issuers:
  - name: idp
    issuer: %s
    audiences: [https://hooks.example.com]
  - name: partner
    audiences: [https://hooks.example.com]
    introspection: { url: %s, client_id: %s, client_secret: %q }
routes:
  - path_prefix: /hooks
`, idp.Issuer(), in.URL(), in.ClientID, in.ClientSecret))
	var out bytes.Buffer
	if err := check(context.Background(), path, &out); err != nil {
		t.Fatalf("check failed: %v\n%s", err, out.String())
	}
	// Two calls: one with tokengate's credentials, one without (refused,
	// so no warning that the endpoint answers anyone).
	if !strings.Contains(out.String(), "credentials accepted\n") || in.Calls() != 2 {
		t.Fatalf("introspection not probed (%d calls):\n%s", in.Calls(), out.String())
	}
}

// TestCheckWarnsAboutPublicIntrospectionWithoutAuth: auth: none is fine on
// loopback or a private address and warned about on a public one.
func TestCheckWarnsAboutPublicIntrospectionWithoutAuth(t *testing.T) {
	for host, warn := range map[string]bool{"127.0.0.1:4445": false, "10.1.2.3:4445": false, "203.0.113.7:4445": true} {
		path := writeConfig(t, fmt.Sprintf(`
upstream: http://127.0.0.1:9000
issuers:
  - name: hydra
    audiences: [https://hooks.example.com]
    introspection: { url: "http://%s/admin/oauth2/introspect", auth: none, timeout: 200ms }
routes: [{ path: /hooks }]
`, host))
		var out bytes.Buffer
		_ = check(context.Background(), path, &out)
		if got := strings.Contains(out.String(), "warning: issuers[0].introspection.auth: none, but 203.0.113.7 is a public address"); got != warn {
			t.Errorf("%s: warning shown = %v, want %v:\n%s", host, got, warn, out.String())
		}
	}
}

// TestIntrospectionAuthNoneThroughTheGate: an opaque token verified by an
// endpoint that takes no client credentials reaches the receiver.
func TestIntrospectionAuthNoneThroughTheGate(t *testing.T) {
	in := verifiertest.NewIntrospector()
	defer in.Close()
	in.SetNoClientAuth(true)
	in.Add("opaque-1", verifiertest.ActiveClaims("webhooks:write", time.Hour))
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer recv.Close()
	s := startYAML(t, fmt.Sprintf(`
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream: %s
issuers:
  - name: hydra
    issuer: https://partner.example
    audiences: [https://hooks.example.com]
    introspection: { url: %q, auth: none }
routes: [{ path_prefix: /hooks, require: { issuers: [hydra], scopes: ["webhooks:write"] } }]
`, recv.URL, in.URL()))
	req, _ := http.NewRequest(http.MethodPost, "http://"+s.pubLn.Addr().String()+"/hooks/a", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer opaque-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
}

// TestCheckNamesIssuerMismatch: a configured issuer that differs from the
// discovery document's only by a slash, case or path is named as such,
// not reported as unreachable.
func TestCheckNamesIssuerMismatch(t *testing.T) {
	var advertised string
	disco := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":%q}`, advertised, advertised+"/keys")
	}))
	defer disco.Close()
	for _, tc := range []struct{ configured, discovered, want string }{
		{disco.URL, disco.URL + "/", "they differ only by a trailing slash"},
		{disco.URL + "/realms/Shop", disco.URL + "/realms/shop", "they differ only in letter case"},
		{disco.URL + "/realms/shop", disco.URL + "/realms/other", `same host, different path: "/realms/shop" vs "/realms/other"`},
	} {
		advertised = tc.discovered
		path := writeConfig(t, fmt.Sprintf(`
upstream: http://127.0.0.1:9000
issuers: [{ name: idp, issuer: %q, audiences: [a], timeout: 1s }]
routes: [{ path: /hooks }]
`, tc.configured))
		var out bytes.Buffer
		_ = check(context.Background(), path, &out)
		want := fmt.Sprintf("issuers[0].issuer: %q ≠ %q, the issuer its discovery document names (%s)", tc.configured, tc.discovered, tc.want)
		if !strings.Contains(out.String(), want) || strings.Contains(out.String(), "UNREACHABLE") {
			t.Errorf("output lacks %s:\n%s", want, out.String())
		}
	}
}

// TestCheckReportsIntrospectionOpenToAnyone: an endpoint that answers
// requests without client credentials is reported; one that refuses them
// is not.
func TestCheckReportsIntrospectionOpenToAnyone(t *testing.T) {
	open := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"active":false}`))
	}))
	defer open.Close()
	strict := verifiertest.NewIntrospector()
	defer strict.Close()
	for url, want := range map[string]bool{open.URL: true, strict.URL(): false} {
		path := writeConfig(t, fmt.Sprintf(`
upstream: http://127.0.0.1:9000
issuers:
  - name: partner
    audiences: [a]
    introspection: { url: %q, client_id: %s, client_secret: %q }
routes: [{ path: /hooks }]
`, url, strict.ClientID, strict.ClientSecret))
		var out bytes.Buffer
		_ = check(context.Background(), path, &out)
		if got := strings.Contains(out.String(), "it also answers requests without credentials"); got != want {
			t.Errorf("%s: reported %v, want %v:\n%s", url, got, want, out.String())
		}
		if !strings.Contains(out.String(), "credentials accepted") {
			t.Errorf("%s: not probed:\n%s", url, out.String())
		}
	}
}
