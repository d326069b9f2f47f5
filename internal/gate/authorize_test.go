package gate

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/egress/egresstest"
)

// TestAuthorizeLoopbackThenServe: `tokengate authorize` listens on the
// loopback redirect_uri; the test plays the browser (following the
// server's redirect); the refresh token is stored, never printed; then
// `serve` calls the vendor with access tokens from it. When the grant is
// revoked, app requests get 503 telling the operator to run authorize,
// and invalid_grant is counted once.
func TestAuthorizeLoopbackThenServe(t *testing.T) {
	srv := egresstest.NewAuthServer("deployteq-app", "app-secret", time.Hour)
	defer srv.Close()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !srv.Valid(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, "webhook executed")
	}))
	defer up.Close()
	path, rtFile, _ := authCodeConfig(t, srv, up.URL)

	authURL, out, code := runAuthorize(t, path, false, strings.NewReader(""))
	resp, err := http.Get(authURL) // the browser: consent, redirect to the loopback listener
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "consent received") {
		t.Fatalf("redirect page: %d %s", resp.StatusCode, page)
	}
	if c := <-code; c != 0 {
		t.Fatalf("authorize exit %d:\n%s", c, <-out)
	}
	printed := <-out
	rt := fileContent(t, rtFile)
	if rt == "" || strings.Contains(printed, rt) {
		t.Fatalf("refresh token missing, or printed:\n%s", printed)
	}
	for _, want := range []string{"scope granted: apps.webhook:execute offline_access", "60 minutes", "mode 0600"} {
		if !strings.Contains(printed, want) {
			t.Errorf("output lacks %q:\n%s", want, printed)
		}
	}

	s := startAt(t, path)
	app := "http://" + s.eg.addrs()["deployteq"] + "/webhooks/execute"
	call := func() (int, string) {
		resp, err := http.Post(app, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := call(); st != 200 || body != "webhook executed" {
		t.Fatalf("app request with the consented grant: %d %s", st, body)
	}
	if fileContent(t, rtFile) == rt {
		t.Error("serve refreshed, but the rotated refresh token was not stored")
	}
	srv.Revoke()
	st, body := call()
	if st != http.StatusServiceUnavailable || !strings.Contains(body, "tokengate authorize deployteq") {
		t.Fatalf("after revocation: %d %s, want 503 naming tokengate authorize", st, body)
	}
	n := srv.Requests()
	call()
	if srv.Requests() != n {
		t.Errorf("%d more token requests after invalid_grant, want none", srv.Requests()-n)
	}
	metrics := get(t, "http://"+s.adminLn.Addr().String()+"/metrics")
	if !strings.Contains(metrics, `tokengate_egress_token_requests_total{egress="deployteq",result="invalid_grant"} 1`) {
		t.Errorf("invalid_grant not counted once:\n%s", grepLines(metrics, "egress_token_requests"))
	}
}
