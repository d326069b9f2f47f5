package gate

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/internal/diagnose"
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
			s, serr := start(t.Context(), path)
			if serr == nil {
				_ = s.Shutdown(context.Background())
				t.Fatal("serve started; this case must be one serve refuses")
			}
			var out bytes.Buffer
			if err := diagnose.Check(t.Context(), path, &out); err == nil || !strings.Contains(out.String(), c.want) {
				t.Fatalf("serve refused (%v) but check said:\n%s", serr, out.String())
			}
		})
	}
}
