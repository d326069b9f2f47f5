package quickstart

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestQuickstartSaysWhatToDoWhenItsFilesAreMissing(t *testing.T) {
	dir := t.TempDir()
	noCert := filepath.Join(dir, "https.yaml")
	y := "listen: \"127.0.0.1:0\"\nupstream: http://127.0.0.1:9000\ntls: { cert_file: certs/tls.crt, key_file: certs/tls.key }\nroutes:\n  - { path: /a, public: true }\n"
	if err := os.WriteFile(noCert, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ cfg, want string }{
		{filepath.Join(dir, "examples/quickstart.yaml"), "run the quickstart from the repository root"},
		{noCert, "make one with the openssl command at the top of " + noCert},
	} {
		recv, err := Receiver(c.cfg, "127.0.0.1:0", io.Discard)
		if err == nil {
			_ = recv.Close()
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("quickstart --config %s: %v, want %q", c.cfg, err, c.want)
		}
	}
}
