package diagnose

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/testpki"
)

func TestCheckReportsCertificateProblems(t *testing.T) {
	p := testpki.New(t, "CA")
	soon, soonKey, _ := p.Issue(t, "localhost", true, time.Now().Add(3*24*time.Hour))
	_, otherKey, _ := p.Issue(t, "localhost", true, time.Now().Add(90*24*time.Hour))
	cases := []struct {
		name     string
		cert     []byte
		key      []byte
		server   string
		problems []string
	}{
		{"unreadable", nil, soonKey, "", []string{"tls.cert_file: open"}},
		{"key does not match", soon, otherKey, "", []string{"tls.cert_file: certificate and key do not load as a pair"}},
		{"expiring within 14 days, wrong name", soon, soonKey, "hooks.example.com", []string{"tls.cert_file: certificate expires in", `does not cover server_name "hooks.example.com"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cf, kf := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
			if c.cert != nil {
				_ = os.WriteFile(cf, c.cert, 0o600)
			}
			_ = os.WriteFile(kf, c.key, 0o600)
			y := fmt.Sprintf("upstream: http://127.0.0.1:9\nroutes: [{path: /a, public: true}]\ntls: { cert_file: %q, key_file: %q, server_name: %q }\n", cf, kf, c.server)
			path := filepath.Join(dir, "tokengate.yaml")
			_ = os.WriteFile(path, []byte(y), 0o600)
			var out strings.Builder
			if err := Check(context.Background(), path, &out); err == nil {
				t.Fatalf("check passed:\n%s", out.String())
			}
			for _, w := range c.problems {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

func TestCertificatePairProblemsNameTheFileAtFault(t *testing.T) {
	p := testpki.New(t, "pair")
	cert, key, _ := p.Issue(t, "localhost", true, time.Now().Add(24*time.Hour))
	certFile, keyFile := p.Write(t, "tls.crt", cert), p.Write(t, "tls.key", key)
	garbage := p.Write(t, "garbage", []byte("not PEM"))
	missing := filepath.Join(t.TempDir(), "missing")
	for _, c := range []struct{ cert, key, want string }{
		{certFile, missing, "tls.key_file: open "},
		{certFile, garbage, "tls.key_file: no PEM private key"},
		{missing, keyFile, "tls.cert_file: open "},
		{garbage, keyFile, "tls.cert_file: no PEM certificate"},
		{keyFile, certFile, "tls.cert_file: no PEM certificate"},
	} {
		_, problems := checkCertPair("tls.cert_file", c.cert, c.key, "", time.Now())
		if len(problems) != 1 || !strings.HasPrefix(problems[0], c.want) {
			t.Errorf("cert %s, key %s: %q, want %q", filepath.Base(c.cert), filepath.Base(c.key), problems, c.want)
		}
	}
}
