package gate

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/verifier/verifiertest"
)

// TestIntrospectionAuthNoneThroughTheGate: an opaque token verified by an
// endpoint that takes no client credentials reaches the receiver.
func TestIntrospectionAuthNoneThroughTheGate(t *testing.T) {
	in := verifiertest.NewIntrospector()
	defer in.Close()
	in.SetNoClientAuth(true)
	in.Add("opaque-1", verifiertest.ActiveClaims("webhooks:write", time.Hour))
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer recv.Close()
	s := startYAML(t, fmt.Sprintf(`
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream: %s
issuers:
  - name: hydra
    issuer: https://partner.example
    audiences: [https://hooks.example.com]
    introspection: { url: %q, auth: none }
routes: [{ path_prefix: /hooks, require: { issuers: [hydra], scopes: ["webhooks:write"] } }]
`, recv.URL, in.URL()))
	req, _ := http.NewRequest(http.MethodPost, "http://"+s.pubLn.Addr().String()+"/hooks/a", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer opaque-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
}
