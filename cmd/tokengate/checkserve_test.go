package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestCheckRefusesWhatServeRefuses runs check and serve on the same broken
// configuration: check must report what makes serve refuse to start.
func TestCheckRefusesWhatServeRefuses(t *testing.T) {
	const hash = "$2a$04$eSqaEAiMVOidFUUkz5EnHeodyG2rDjXGJE9QuTd7q1SFJLaz6XEQO"
	base := "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nupstream: http://127.0.0.1:9\n" +
		"token_endpoint:\n  issuer: http://localhost:8080\n  signing_key_files: [%KEY%]\n  clients:\n" +
		"    - { client_id: a, client_secret_hash: \"" + hash + "\", scopes: [w] }\n" +
		"routes:\n  - { path: /a, require: { scopes: [w] } }\n"
	cases := []struct {
		name string
		key  func(dir string) string // the signing key file to name
		want string                  // in check's output
	}{
		{"signing key missing", func(dir string) string { return filepath.Join(dir, "nope.pem") }, "signing_key_files"},
		{"signing key not PEM", func(dir string) string { return write(t, dir, "garbage.pem", "not a key") }, "signing"},
		{"signing key unreadable (a directory)", func(dir string) string {
			d := filepath.Join(dir, "dir.pem")
			if err := os.Mkdir(d, 0o700); err != nil {
				t.Fatal(err)
			}
			return d
		}, "signing_key_files"},
		{"signing key of a kind the issuer cannot use", func(dir string) string {
			return write(t, dir, "cert.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
		}, "signing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := write(t, dir, "tokengate.yaml", strings.ReplaceAll(base, "%KEY%", c.key(dir)))
			s, serr := start(t.Context(), path, zap.NewNop())
			if serr == nil {
				_ = s.shutdown()
				t.Fatal("serve started; this case must be one serve refuses")
			}
			var out bytes.Buffer
			if err := check(t.Context(), path, &out); err == nil || !strings.Contains(out.String(), c.want) {
				t.Fatalf("serve refused (%v) but check said:\n%s", serr, out.String())
			}
		})
	}
}

func TestCheckFindsARefreshTokenDirectoryItCannotWrite(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("uses /proc, where nobody may create a file")
	}
	// /proc/self/comm is readable and non-empty; nobody, root included,
	// can create a file beside it.
	y := "admin_listen: 127.0.0.1:0\negress:\n  - name: vendor\n    listen: 127.0.0.1:0\n    upstream: https://vendor.example\n" +
		"    token:\n      grant: authorization_code\n      url: https://vendor.example/oauth2/token\n      authorize_url: https://vendor.example/oauth2/auth\n" +
		"      redirect_uri: http://127.0.0.1:8765/callback\n      client_id: c\n      client_secret: ${TG_TEST_SECRET}\n      refresh_token_file: /proc/self/comm\n"
	t.Setenv("TG_TEST_SECRET", "s")
	path := write(t, t.TempDir(), "tokengate.yaml", y)
	var out bytes.Buffer
	err := check(t.Context(), path, &out)
	if err == nil || !strings.Contains(out.String(), "the directory /proc/self is not writable") {
		t.Fatalf("check: %v\n%s", err, out.String())
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
		if err := check(t.Context(), path, &out); err != nil {
			t.Fatalf("a receiver that is down is a warning, not a problem: %v\n%s", err, out.String())
		}
		if got := strings.Contains(out.String(), "does not accept connections"); got != c.warned {
			t.Errorf("upstream %s: warned %v, want %v:\n%s", c.upstream, got, c.warned, out.String())
		}
	}
}

func TestCheckWarnsOfASubjectAnyTrustedCAMayIssue(t *testing.T) {
	a, b := newPKI(t, "Partner A CA"), newPKI(t, "Partner B CA")
	cert, key, _ := a.issue(t, "localhost", true, time.Now().Add(24*time.Hour))
	caA, _ := os.ReadFile(a.caFile)
	caB, _ := os.ReadFile(b.caFile)
	both := a.write(t, "both.pem", append(caA, caB...))
	for _, c := range []struct {
		name, require string
		warned        bool
	}{
		{"subjects only", `{ subjects: ["CN=aftership"] }`, true},
		{"bound to a CA", `{ subjects: ["CN=aftership"], ca_file: ` + a.caFile + ` }`, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			y := fmt.Sprintf("listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nupstream: http://127.0.0.1:9\n"+
				"tls: { cert_file: %s, key_file: %s, client_ca_file: %s, client_auth: request }\n"+
				"routes:\n  - { path: /a, public: false, auth: bearer, require: { client_cert: %s } }\n",
				a.write(t, "tls.crt", cert), a.write(t, "tls.key", key), both, c.require)
			y = strings.Replace(y, "public: false, auth: bearer, ", "", 1)
			path := write(t, t.TempDir(), "tokengate.yaml", y)
			var out bytes.Buffer
			_ = check(t.Context(), path, &out)
			if got := strings.Contains(out.String(), "accepts a certificate from any of the 2 CAs"); got != c.warned {
				t.Errorf("warned %v, want %v:\n%s", got, c.warned, out.String())
			}
			if !strings.Contains(out.String(), "client_cert") {
				t.Errorf("the route summary does not show client_cert:\n%s", out.String())
			}
		})
	}
}
