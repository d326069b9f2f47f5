package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const egressOnlyYAML = `
egress:
  - name: deployteq
    upstream: https://api.deployteq.example/webhooks
    token:
      url: https://auth.clang.cloud/oauth2/token
      client_id: a227118e
      client_secret: ${DEPLOYTEQ_SECRET}
      scopes: [apps.webhook:execute]
`

// TestEgressOnly: a configuration with only egress entries is valid and
// has no receiving side; defaults are applied.
func TestEgressOnly(t *testing.T) {
	cfg, err := Parse([]byte(egressOnlyYAML), t.TempDir(), env("DEPLOYTEQ_SECRET", "s3cr3t"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Receiving() {
		t.Error("an egress-only config has a receiving side")
	}
	e := cfg.Egress[0]
	if e.Listen != DefaultEgressListen || e.Token.Auth != EgressAuthBasic || e.WaitTimeout.D() != DefaultEgressWaitTimeout ||
		e.RetryBodyLimit != DefaultEgressRetryBodyLimit || !e.ReadyRequiresTokenOrDefault() || e.Token.ClientSecret != "s3cr3t" {
		t.Errorf("defaults not applied: %+v", e)
	}
}

func TestEgressSecretFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	y := strings.Replace(egressOnlyYAML, "client_secret: ${DEPLOYTEQ_SECRET}", "client_secret_file: secret", 1)
	cfg, err := Parse([]byte(y), dir, env())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Egress[0].Token.ClientSecret != "from-file" {
		t.Errorf("secret %q", cfg.Egress[0].Token.ClientSecret)
	}
}

// TestEgressValidation: each mistake is reported with its path.
func TestEgressValidation(t *testing.T) {
	for _, tc := range []struct {
		name, from, to, env, path, msg string
	}{
		{"plain secret", "${DEPLOYTEQ_SECRET}", "hunter2", "", "egress[0].token.client_secret", "plain-text secrets are refused"},
		{"default smuggles a secret", "${DEPLOYTEQ_SECRET}", "${UNSET:-hunter2}", "", "egress[0].token.client_secret", "plain-text"},
		{"secret around a reference", "${DEPLOYTEQ_SECRET}", "x${DEPLOYTEQ_SECRET}", "s", "egress[0].token.client_secret", "plain-text"},
		{"http upstream", "https://api.deployteq.example/webhooks", "http://api.deployteq.example/webhooks", "s", "egress[0].upstream.url", "plain http"},
		{"http token url", "https://auth.clang.cloud/oauth2/token", "http://auth.clang.cloud/oauth2/token", "s", "egress[0].token.url", "insecure_http"},
		{"public listen", "    upstream:", "    listen: \"0.0.0.0:8081\"\n    upstream:", "s", "egress[0].listen", "not a loopback address"},
		{"public listen, client certificates only requested", "    upstream:", "    listen: \"0.0.0.0:8443\"\n    tls: {cert_file: c.pem, key_file: k.pem, client_ca_file: ca.pem, client_auth: request}\n    upstream:", "s", "egress[0].listen", "not a loopback address"},
		{"loopback look-alike name", "    upstream:", "    listen: \"localhost.example:8081\"\n    upstream:", "s", "egress[0].listen", "not a loopback address"},
		{"all interfaces", "    upstream:", "    listen: \":8081\"\n    upstream:", "s", "egress[0].listen", "not a loopback address"},
		{"bad auth", "      scopes:", "      auth: digest\n      scopes:", "s", "egress[0].token.auth", "basic, form, json or multipart"},
		{"reserved param", "      scopes:", "      params: {grant_type: password}\n      scopes:", "s", "egress[0].token.params.grant_type", "set by tokengate"},
		{"bad scope", "[apps.webhook:execute]", "[\"a b\"]", "s", "egress[0].token.scopes", "invalid scope"},
		{"no name", "  - name: deployteq", "  - name: \"\"", "s", "egress[0].name", "required"},
		{"skip verify", "    upstream: https://api.deployteq.example/webhooks", "    upstream: {url: https://api.deployteq.example/webhooks, insecure_skip_tls_verify: true}", "s", "egress[0].upstream.insecure_skip_tls_verify", "ca_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := strings.Replace(egressOnlyYAML, tc.from, tc.to, 1)
			if y == egressOnlyYAML {
				t.Fatal("replacement did not apply")
			}
			wantFieldErr(t, y, env("DEPLOYTEQ_SECRET", tc.env), tc.path, tc.msg)
		})
	}
}

// TestEgressListenRules: a public address needs client certificates; two
// entries cannot share a listener; the receiving side keeps its own port.
func TestEgressListenRules(t *testing.T) {
	two := egressOnlyYAML + `  - name: myparcel
    listen: 127.0.0.1:8081
    upstream: https://api.myparcel.example
    token: {url: "https://auth.myparcel.example/access-token", client_id: b446, client_secret: "${DEPLOYTEQ_SECRET}", auth: json, scopes: ["*"]}
`
	wantFieldErr(t, two, env("DEPLOYTEQ_SECRET", "s"), "egress[1].listen", "is also egress[0]")

	mtls := strings.Replace(egressOnlyYAML, "    upstream:", "    listen: 0.0.0.0:8443\n    tls: {cert_file: c.pem, key_file: k.pem, client_ca_file: ca.pem}\n    upstream:", 1)
	if _, err := Parse([]byte(mtls), t.TempDir(), env("DEPLOYTEQ_SECRET", "s")); err != nil {
		t.Errorf("a public listener with required client certificates is refused: %v", err)
	}
	onAdmin := strings.Replace(egressOnlyYAML, "    upstream:", "    listen: 127.0.0.1:9090\n    upstream:", 1)
	wantFieldErr(t, onAdmin, env("DEPLOYTEQ_SECRET", "s"), "egress[0].listen", "admin_listen")
}

// wantFieldErr parses y and wants a problem at path whose text has msg.
func wantFieldErr(t *testing.T, y string, o Options, path, msg string) {
	t.Helper()
	_, err := Parse([]byte(y), t.TempDir(), o)
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a config.Error", err)
	}
	for _, e := range ce.Errs {
		var fe *FieldError
		if errors.As(e, &fe) && fe.Path == path && strings.Contains(fe.Msg, msg) {
			return
		}
	}
	t.Fatalf("no problem at %s containing %q in:\n%v", path, msg, err)
}
