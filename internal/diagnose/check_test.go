package diagnose

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/testpki"
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
	err := Check(context.Background(), path, &out)
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
	if err := Check(context.Background(), path, &out); err != nil {
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
		_ = Check(context.Background(), path, &out)
		if got := strings.Contains(out.String(), "warning: issuers[0].introspection.auth: none, but 203.0.113.7 is a public address"); got != warn {
			t.Errorf("%s: warning shown = %v, want %v:\n%s", host, got, warn, out.String())
		}
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
		_ = Check(context.Background(), path, &out)
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
		_ = Check(context.Background(), path, &out)
		if got := strings.Contains(out.String(), "it also answers requests without credentials"); got != want {
			t.Errorf("%s: reported %v, want %v:\n%s", url, got, want, out.String())
		}
		if !strings.Contains(out.String(), "credentials accepted") {
			t.Errorf("%s: not probed:\n%s", url, out.String())
		}
	}
}

func write(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckWarnsWhenTheUpstreamAcceptsNoConnections(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	addr := closed.Listener.Addr().String()
	closed.Close() // nothing listens there now
	open := httptest.NewServer(http.NotFoundHandler())
	defer open.Close()
	for _, c := range []struct {
		upstream string
		warned   bool
	}{{"http://" + addr, true}, {open.URL, false}} {
		y := "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nupstream: " + c.upstream + "\nroutes:\n  - { path: /a, public: true }\n"
		path := write(t, t.TempDir(), "tokengate.yaml", y)
		var out bytes.Buffer
		if err := Check(t.Context(), path, &out); err != nil {
			t.Fatalf("a receiver that is down is a warning, not a problem: %v\n%s", err, out.String())
		}
		if got := strings.Contains(out.String(), "does not accept connections"); got != c.warned {
			t.Errorf("upstream %s: warned %v, want %v:\n%s", c.upstream, got, c.warned, out.String())
		}
	}
}

func TestCheckWarnsOfASubjectAnyTrustedCAMayIssue(t *testing.T) {
	a, b := testpki.New(t, "Partner A CA"), testpki.New(t, "Partner B CA")
	cert, key, _ := a.Issue(t, "localhost", true, time.Now().Add(24*time.Hour))
	caA, _ := os.ReadFile(a.File)
	caB, _ := os.ReadFile(b.File)
	both := a.Write(t, "both.pem", append(caA, caB...))
	for _, c := range []struct {
		name, require string
		warned        bool
	}{
		{"subjects only", `{ subjects: ["CN=aftership"] }`, true},
		{"bound to a CA", `{ subjects: ["CN=aftership"], ca_file: ` + a.File + ` }`, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			y := fmt.Sprintf("listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nupstream: http://127.0.0.1:9\n"+
				"tls: { cert_file: %s, key_file: %s, client_ca_file: %s, client_auth: request }\n"+
				"routes:\n  - { path: /a, public: false, auth: bearer, require: { client_cert: %s } }\n",
				a.Write(t, "tls.crt", cert), a.Write(t, "tls.key", key), both, c.require)
			y = strings.Replace(y, "public: false, auth: bearer, ", "", 1)
			path := write(t, t.TempDir(), "tokengate.yaml", y)
			var out bytes.Buffer
			_ = Check(t.Context(), path, &out)
			if got := strings.Contains(out.String(), "accepts a certificate from any of the 2 CAs"); got != c.warned {
				t.Errorf("warned %v, want %v:\n%s", got, c.warned, out.String())
			}
			if !strings.Contains(out.String(), "client_cert") {
				t.Errorf("the route summary does not show client_cert:\n%s", out.String())
			}
		})
	}
}

// freeAddr returns a loopback address nobody listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestCheckRefusesInvalidOTELVariables: check runs the start's tracing
// checks on this environment's OTEL_* variables: a bogus sampler and a
// malformed header are problems naming the variable, and the header's
// value is never shown.
func TestCheckRefusesInvalidOTELVariables(t *testing.T) {
	idp := verifiertest.New()
	defer idp.Close()
	path := writeConfig(t, fmt.Sprintf(`
upstream: http://127.0.0.1:9000
issuers: [{ name: idp, issuer: %s, audiences: [https://hooks.example.com] }]
routes: [{ path_prefix: /hooks }]
`, idp.Issuer()))
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318") // turns tracing on
	t.Setenv("OTEL_TRACES_SAMPLER", "bogus")
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=OTLPAPIKEY_Rr5%zz")
	var out bytes.Buffer
	err := Check(context.Background(), path, &out)
	if err == nil {
		t.Fatalf("check passed with invalid OTEL_* variables:\n%s", out.String())
	}
	for _, want := range []string{"tracing: OTEL_TRACES_SAMPLER: unknown sampler", "tracing: OTEL_EXPORTER_OTLP_HEADERS:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "OTLPAPIKEY") {
		t.Errorf("check shows the header's value:\n%s", out.String())
	}
}
