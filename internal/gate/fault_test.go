package gate

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/verifier/verifiertest"
)

// TestJWKSServerStoppedAtStartRecoversWithoutRestart stops the identity
// provider for real before tokengate starts, then brings it back.
func TestJWKSServerStoppedAtStartRecoversWithoutRestart(t *testing.T) {
	idp := verifiertest.New()
	defer func() { idp.Close() }()
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer recv.Close()
	tok := idp.Mint(idp.Claims(testAud, "webhooks:write"))
	idp.Close()
	s := startYAML(t, gateYAML(idp, recv.URL, hooksRoute)+"retry_after: 3s\n")
	pub, admin := "http://"+s.pubLn.Addr().String(), "http://"+s.adminLn.Addr().String()
	resp, err := http.Get(admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("readyz with the IdP stopped: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPost, pub+"/hooks/a", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "3" {
		t.Fatalf("request with the IdP stopped: %d Retry-After %q, want 503 and 3", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if err := idp.Restart(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "readyz 200 after the IdP restarted", func() bool {
		resp, err := http.Get(admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	req, _ = http.NewRequest(http.MethodPost, pub+"/hooks/a", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("after recovery: %d", resp.StatusCode)
	}
}

// introspectionGate runs tokengate with an RFC 7662 issuer.
func introspectionGate(t *testing.T) (*verifiertest.Introspector, func(token string) (int, string)) {
	t.Helper()
	in := verifiertest.NewIntrospector()
	t.Cleanup(in.Close)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	t.Cleanup(recv.Close)
	s := startYAML(t, fmt.Sprintf(`
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream: %s
issuers:
  - name: partner
    issuer: https://partner.example
    audiences: [https://hooks.example.com]
    introspection: { url: %s, client_id: %s, client_secret: %q, timeout: 200ms }
cache: { negative_ttl: 0s }
routes:
  - { path_prefix: /hooks }
`, recv.URL, in.URL(), in.ClientID, in.ClientSecret))
	pub := "http://" + s.pubLn.Addr().String()
	return in, func(token string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, pub+"/hooks/x", strings.NewReader("{}"))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
}

func TestSlowIntrospectionIs503WhileCachedTokensPass(t *testing.T) {
	in, send := introspectionGate(t)
	in.Add("cached", verifiertest.ActiveClaims("x", time.Hour))
	in.Add("new", verifiertest.ActiveClaims("x", time.Hour))
	if code, _ := send("cached"); code != 200 {
		t.Fatalf("warm-up: %d", code)
	}
	in.SetDelay(time.Second) // past the 200ms timeout
	if code, _ := send("cached"); code != 200 {
		t.Fatalf("a cached token during the slowdown: %d", code)
	}
	if code, ra := send("new"); code != 503 || ra == "" {
		t.Fatalf("a new token during the slowdown: %d Retry-After %q, want 503", code, ra)
	}
	in.SetDelay(0)
	if code, _ := send("new"); code != 200 {
		t.Fatalf("after the slowdown: %d", code)
	}
}

func TestFlappingIntrospectionNeverTurnsAnOutageInto401(t *testing.T) {
	in, send := introspectionGate(t)
	for i := range 20 {
		good, bad := fmt.Sprintf("good-%d", i), fmt.Sprintf("bad-%d", i)
		in.Add(good, verifiertest.ActiveClaims("x", time.Hour))
		down := i%2 == 1
		if down {
			in.SetStatus(http.StatusBadGateway)
		} else {
			in.SetStatus(0)
		}
		gc, _ := send(good)
		bc, _ := send(bad)
		switch {
		case down && (gc != 503 || bc != 503):
			t.Fatalf("round %d (down): valid %d, unknown %d; want 503 for both", i, gc, bc)
		case !down && (gc != 200 || bc != 401):
			t.Fatalf("round %d (up): valid %d, unknown %d; want 200 and 401", i, gc, bc)
		}
	}
}
