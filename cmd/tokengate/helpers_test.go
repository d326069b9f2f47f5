package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokengate/tokengate/verifier/verifiertest"
)

// writeConfig writes y to a fresh tokengate.yaml and returns its path.
func writeConfig(t *testing.T, y string) string {
	t.Helper()
	return write(t, t.TempDir(), "tokengate.yaml", y)
}

// write writes data to dir/name and returns its path.
func write(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
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

const testAud = "https://hooks.example.com"

// gateYAML is a gate on any free port in front of recv, trusting idp.
func gateYAML(idp *verifiertest.IdP, recv string, routes string) string {
	return fmt.Sprintf(`
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
shutdown_grace: 5s
upstream: %s
issuers:
  - name: idp
    issuer: %s
    audiences: [%s]
    timeout: 1s
routes:
%s`, recv, idp.Issuer(), testAud, routes)
}

const hooksRoute = "  - { name: hooks, path_prefix: /hooks, require: { scopes: [\"webhooks:write\"] } }\n"

// eventually polls cond for up to 30s; file watching and key fetching are
// asynchronous by nature.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
