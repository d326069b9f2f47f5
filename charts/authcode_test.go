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

// sharedAuthCodeValues is authCodeValues with the entry shared through
// Redis and no refresh token file.
var sharedAuthCodeValues = strings.Replace(strings.Replace(authCodeValues,
	"          refresh_token_file: /var/lib/tokengate/deployteq-refresh-token\n", "          shared: redis\n", 1),
	"    egress:\n", "    redis: { url: \"redis://redis:6379/0\", token_key_file: /secrets/redis-token-key }\n    egress:\n", 1) +
	"secret: { stringData: { deployteq-client-secret: s, redis-token-key: a2V5 } }\n"

// TestSharedAuthorizationCodeRunsOnReplicas: an authorization_code entry
// with token.shared: redis refreshes under a Redis lock, so helm renders
// it with three replicas, rolling, with no refresh token file; shared
// without a redis block it refuses and says what to add.
func TestSharedAuthorizationCodeRunsOnReplicas(t *testing.T) {
	values := valuesFile(t, sharedAuthCodeValues)
	docs := renderAll(t, "-f", values, "--set", "replicaCount=3")
	dep := find(docs, "Deployment", "")
	if get(dep, "spec", "replicas") != float64(3) && get(dep, "spec", "replicas") != 3 {
		t.Fatalf("replicas = %v", get(dep, "spec", "replicas"))
	}
	if get(dep, "spec", "strategy", "type") == "Recreate" {
		t.Error("a shared entry forced Recreate: the replicas need not be replaced one at a time")
	}
	startsWith(t, docs)
	noRedis := valuesFile(t, strings.Replace(sharedAuthCodeValues, "    redis: { url: \"redis://redis:6379/0\", token_key_file: /secrets/redis-token-key }\n", "", 1))
	if msg := templateFails(t, "-f", noRedis, "--set", "replicaCount=3"); !strings.Contains(msg, "egress deployteq: token.shared: redis needs tokengate.config.redis.url") {
		t.Fatalf("shared without a redis block:\n%s", msg)
	}
	withFile := valuesFile(t, strings.Replace(sharedAuthCodeValues, "          shared: redis\n", "          shared: redis\n          refresh_token_file: /var/lib/tokengate/deployteq-refresh-token\n", 1))
	if msg := templateFails(t, "-f", withFile, "--set", "replicaCount=3"); !strings.Contains(msg, "not on a writable volume") {
		t.Fatalf("a shared entry's refresh token file on no writable volume was accepted:\n%s", msg)
	}
}
