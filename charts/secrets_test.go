package charts

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/issuer"
)

// renderAll renders the chart and decodes every document (two of a kind,
// e.g. Secrets, are told apart by name: see find).
func renderAll(t *testing.T, args ...string) []manifest {
	t.Helper()
	var out []manifest
	for _, d := range renderDocs(t, args...) {
		var m manifest
		// (renderDocs cut the line break before "---": give it back, or a
		// block scalar at the end loses its final newline)
		if err := yaml.Unmarshal([]byte(d+"\n"), &m); err != nil {
			t.Fatal(err)
		}
		if m != nil {
			out = append(out, m)
		}
	}
	return out
}

// find returns the document of that kind whose name ends with suffix.
func find(docs []manifest, kind, suffix string) manifest {
	for _, d := range docs {
		if d["kind"] == kind && strings.HasSuffix(toString(get(d, "metadata", "name")), suffix) {
			return d
		}
	}
	return nil
}

// templateFails runs helm template expecting it to refuse; it returns
// helm's message.
func templateFails(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(helm(t), append([]string{"template", "gate", "./tokengate"}, args...)...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err == nil {
		t.Fatalf("helm template %v rendered; it must refuse", args)
	}
	return errb.String()
}

// valuesFile writes values YAML to a file for -f.
func valuesFile(t *testing.T, values string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(p, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startsWith checks what tokengate does at start with the rendered
// manifests: the ConfigMap's config, with the rendered Secret's keys as the
// files under /secrets, passes validation, and every signing key loads.
func startsWith(t *testing.T, docs []manifest) *config.Config {
	t.Helper()
	dir := t.TempDir()
	if s := find(docs, "Secret", "-secrets"); s != nil {
		for k, v := range get(s, "stringData").(map[string]any) {
			if err := os.WriteFile(filepath.Join(dir, k), []byte(toString2(v)), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	raw := toString2(get(find(docs, "ConfigMap", "-config"), "data", "config.yaml"))
	env := func(k string) (string, bool) { return "192.0.2.10", k == "POD_IP" }
	cfg, err := config.Parse([]byte(strings.ReplaceAll(raw, "/secrets/", dir+"/")), dir, config.Options{LookupEnv: env})
	if err != nil {
		t.Fatalf("tokengate would not start: %v\n%s", err, raw)
	}
	if te := cfg.TokenEndpoint; te != nil {
		if len(te.SigningKeyFiles) == 0 {
			t.Fatal("no signing_key_files: every replica would sign with a key of its own")
		}
		for _, f := range te.SigningKeyFiles {
			if _, err := issuer.LoadKeyFile(f); err != nil {
				t.Fatalf("tokengate would not start: signing key: %v", err)
			}
		}
	}
	return cfg
}

// toString2 is a string value as is (toString re-marshals it as YAML).
func toString2(v any) string { s, _ := v.(string); return s }

// TestDefaultsRenderAPodThatStarts: with the default values (Token URL on,
// no Secret given) the chart makes the signing key (an EC P-256 key, the
// "EC PRIVATE KEY" PEM Helm writes, which tokengate reads) and the client's
// secret: the hash in the mounted Secret matches the plain text in the
// unmounted one, tokengate's config validates with those files and its
// signing key loads. Each install gets its own key.
func TestDefaultsRenderAPodThatStarts(t *testing.T) {
	docs := renderAll(t)
	sec := find(docs, "Secret", "-secrets")
	if sec == nil {
		t.Fatal("defaults: no Secret rendered, the pod would fail on /secrets/signing.pem")
	}
	pemKey := toString2(get(sec, "stringData", "signing.pem"))
	if !strings.HasPrefix(pemKey, "-----BEGIN EC PRIVATE KEY-----") {
		t.Fatalf("signing.pem starts %q, want a generated EC key", strings.SplitN(pemKey, "\n", 2)[0])
	}
	k, err := issuer.ParseKeyPEM([]byte(pemKey))
	if err != nil || k.Public().Algorithm != "ES256" {
		t.Fatalf("tokengate does not take the generated key: %v (%v)", err, k)
	}
	plain := toString2(get(find(docs, "Secret", "-client-secrets"), "stringData", "aftership"))
	hash := toString2(get(sec, "stringData", "aftership.hash"))
	if len(plain) < 32 || bcrypt.CompareHashAndPassword([]byte(hash), []byte(plain)) != nil {
		t.Fatalf("the generated client secret (%d chars) does not match the hash tokengate reads", len(plain))
	}
	startsWith(t, docs)
	dep := find(docs, "Deployment", "")
	if get(dep, "spec", "template", "metadata", "annotations", "checksum/secret") == nil {
		t.Error("no checksum/secret: a new key would not roll the pods")
	}
	again := find(renderAll(t), "Secret", "-secrets")
	if get(again, "stringData", "signing.pem") == pemKey {
		t.Error("two installs got the same signing key: it is baked into the chart")
	}
}

// TestRS256GetsAnRSAKey: algorithm RS256 makes an RSA key ("RSA PRIVATE
// KEY", PKCS #1), which tokengate reads too.
func TestRS256GetsAnRSAKey(t *testing.T) {
	docs := renderAll(t, "--set", "tokengate.config.token_endpoint.algorithm=RS256")
	pemKey := toString2(get(find(docs, "Secret", "-secrets"), "stringData", "signing.pem"))
	k, err := issuer.ParseKeyPEM([]byte(pemKey))
	if !strings.HasPrefix(pemKey, "-----BEGIN RSA PRIVATE KEY-----") || err != nil || k.Public().Algorithm != "RS256" {
		t.Fatalf("RS256: key starts %q: %v", strings.SplitN(pemKey, "\n", 2)[0], err)
	}
	startsWith(t, docs)
}

// TestGivenSecretsAreNotReplaced: what stringData gives is used as is and
// nothing is generated for it; without signing_key_files the chart sets
// [/secrets/signing.pem] (replicas must share one key).
func TestGivenSecretsAreNotReplaced(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("given"), bcrypt.MinCost)
	key, _ := issuer.GenerateKey("ES256")
	keyPEM, _ := issuer.EncodeKeyPEM(key)
	values := valuesFile(t, "tokengate:\n  config:\n    token_endpoint:\n      signing_key_files: null\n"+
		"secret:\n  stringData:\n    signing.pem: |\n"+indent(string(keyPEM), 6)+"    aftership.hash: '"+string(hash)+"'\n")
	docs := renderAll(t, "-f", values)
	sec := find(docs, "Secret", "-secrets")
	if get(sec, "stringData", "signing.pem") != string(keyPEM) || get(sec, "stringData", "aftership.hash") != string(hash) {
		t.Fatalf("given secrets replaced: %v", get(sec, "stringData"))
	}
	if find(docs, "Secret", "-client-secrets") != nil {
		t.Error("a client secret was generated although its hash was given")
	}
	cfg := startsWith(t, docs)
	if len(cfg.TokenEndpoint.SigningKeyFiles) != 1 || !strings.HasSuffix(cfg.TokenEndpoint.SigningKeyFiles[0], "/signing.pem") {
		t.Errorf("signing_key_files = %v, want the chart's /secrets/signing.pem", cfg.TokenEndpoint.SigningKeyFiles)
	}
}

func indent(s string, n int) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n"+pad) + "\n"
}

// TestAFileTheChartCannotMakeFailsTheRender: a vendor's client secret (or
// any /secrets/ file other than signing keys and client secrets) that is
// not given fails helm template with a message saying how to give it,
// instead of rendering a pod that cannot start.
func TestAFileTheChartCannotMakeFailsTheRender(t *testing.T) {
	egress := `tokengate:
  config:
    egress:
      - name: deployteq
        listen: 127.0.0.1:8081
        upstream: https://webhooks.deployteq.example
        token:
          url: https://auth.clang.cloud/oauth2/token
          client_id: a227118e
          client_secret_file: /secrets/deployteq-client-secret
          auth: basic
`
	msg := templateFails(t, "-f", valuesFile(t, egress))
	if !strings.Contains(msg, "/secrets/deployteq-client-secret") || !strings.Contains(msg, "secret.stringData.deployteq-client-secret") || !strings.Contains(msg, "secret.existingSecret") {
		t.Fatalf("the message does not say what to set:\n%s", msg)
	}
	docs := renderAll(t, "-f", valuesFile(t, egress+"secret:\n  stringData:\n    deployteq-client-secret: s3cret\n"))
	if get(find(docs, "Secret", "-secrets"), "stringData", "deployteq-client-secret") != "s3cret" {
		t.Fatal("the given vendor secret is not in the Secret")
	}
	startsWith(t, docs)
}
