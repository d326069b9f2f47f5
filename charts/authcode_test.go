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
	docs := render(t, "-f", values, "--set", "replicaCount=1")
	if docs["Deployment"] == nil {
		t.Fatal("one replica: no Deployment rendered")
	}
}
