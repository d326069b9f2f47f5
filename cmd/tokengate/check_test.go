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
	if !strings.Contains(out.String(), "credentials accepted") || in.Calls() != 1 {
		t.Fatalf("introspection not probed:\n%s", out.String())
	}
}
