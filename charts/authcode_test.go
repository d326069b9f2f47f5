package charts

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// authCodeValues is an egress entry with grant: authorization_code.
const authCodeValues = `tokengate:
  config:
    token_endpoint: { issuer: https://hooks.example.com }
    routes: [{ path_prefix: /hooks }]
    egress:
      - name: deployteq
        listen: 127.0.0.1:8081
        upstream: https://webhooks.deployteq.example
        token:
          grant: authorization_code
          url: https://auth.clang.cloud/oauth2/token
          authorize_url: https://auth.clang.cloud/oauth2/auth
          redirect_uri: https://app.example.com/oauth/callback
          refresh_token_file: /var/lib/tokengate/deployteq-refresh-token
          client_id: a227118e
          client_secret_file: /secrets/deployteq-client-secret
          scopes: ["apps.webhook:execute", offline_access]
`

// TestAuthorizationCodeNeedsOneReplica: several replicas would share one
// rotating refresh token; helm template refuses, naming the entry.
func TestAuthorizationCodeNeedsOneReplica(t *testing.T) {
	values := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(values, []byte(authCodeValues), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(helm(t), "template", "gate", "./tokengate", "-f", values, "--set", "replicaCount=2")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err == nil {
		t.Fatal("helm template accepted 2 replicas sharing an authorization_code egress")
	}
	if !strings.Contains(errb.String(), "egress deployteq uses grant: authorization_code") || !strings.Contains(errb.String(), "replicaCount: 1") {
		t.Fatalf("message does not say what to do:\n%s", errb.String())
	}
	docs := render(t, "-f", values, "--set", "replicaCount=1", "--set", "persistence.enabled=true", "--set", "secret.stringData.deployteq-client-secret=s")
	if docs["Deployment"] == nil {
		t.Fatal("one replica: no Deployment rendered")
	}
}

// TestAuthorizationCodeNeedsAWritableVolume: the refresh token is written
// by `tokengate authorize` and at every rotation, and the container's root
// filesystem is read-only: helm template refuses an authorization_code
// entry whose refresh_token_file is on no writable volume, and says how to
// add one. With persistence (or a writable extra mount) holding the file
// it renders, one pod at a time (Recreate): the rotating token never has
// two spenders, not even during a rollout.
func TestAuthorizationCodeNeedsAWritableVolume(t *testing.T) {
	values := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(values, []byte(authCodeValues+"replicaCount: 1\nsecret: { stringData: { deployteq-client-secret: s } }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	msg := templateFails(t, "-f", values)
	for _, want := range []string{"egress deployteq", "/var/lib/tokengate/deployteq-refresh-token", "not on a writable volume", "persistence.enabled=true", "extraVolumeMounts"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("message lacks %q:\n%s", want, msg)
		}
	}
	readOnly := valuesFile(t, "extraVolumes: [{ name: rt, emptyDir: {} }]\nextraVolumeMounts: [{ name: rt, mountPath: /var/lib/tokengate, readOnly: true }]\n")
	if msg := templateFails(t, "-f", values, "-f", readOnly); !strings.Contains(msg, "not on a writable volume") {
		t.Fatalf("a read-only extra mount was taken as writable:\n%s", msg)
	}
	// A vendor that never rotates: the refresh token may be a file of the
	// (read-only) Secret, and must then be given.
	inSecret := valuesFile(t, strings.Replace(authCodeValues, "/var/lib/tokengate/", "/secrets/", 1)+"replicaCount: 1\nsecret: { stringData: { deployteq-client-secret: s } }\n")
	if msg := templateFails(t, "-f", inSecret); !strings.Contains(msg, "secret.stringData.deployteq-refresh-token") {
		t.Fatalf("a refresh token file in the Secret that nobody gives was accepted:\n%s", msg)
	}
	startsWith(t, renderAll(t, "-f", inSecret, "--set", "secret.stringData.deployteq-refresh-token=rt"))
	for name, extra := range map[string][]string{
		"persistence":  {"--set", "persistence.enabled=true"},
		"extraVolumes": {"-f", valuesFile(t, "extraVolumes: [{ name: rt, emptyDir: {} }]\nextraVolumeMounts: [{ name: rt, mountPath: /var/lib/tokengate/ }]\n")},
		"elsewhere":    {"--set", "persistence.enabled=true", "--set", "persistence.mountPath=/var/lib/tg"},
	} {
		t.Run(name, func(t *testing.T) {
			args := append([]string{"-f", values}, extra...)
			if name == "elsewhere" {
				if msg := templateFails(t, args...); !strings.Contains(msg, "(/var/lib/tg)") {
					t.Fatalf("a file outside the volume was accepted:\n%s", msg)
				}
				return
			}
			docs := renderAll(t, args...)
			dep := find(docs, "Deployment", "")
			if get(dep, "spec", "strategy", "type") != "Recreate" {
				t.Errorf("strategy = %v, want Recreate", get(dep, "spec", "strategy"))
			}
			startsWith(t, docs)
		})
	}
}
