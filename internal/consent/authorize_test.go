package consent

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/egress/egresstest"
)

// TestAuthorizePaste: --paste reads the address the browser was sent to.
func TestAuthorizePaste(t *testing.T) {
	srv := egresstest.NewAuthServer("deployteq-app", "app-secret", time.Hour)
	defer srv.Close()
	path, rtFile, _ := authCodeConfig(t, srv, "http://127.0.0.1:9")
	stdin, paste := io.Pipe()
	authURL, out, code := runAuthorize(t, path, true, stdin)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	fmt.Fprintln(paste, resp.Header.Get("Location")) // copied from the address bar
	if got := <-code; got != 0 {
		t.Fatalf("exit %d:\n%s", got, <-out)
	}
	if fileContent(t, rtFile) == "" {
		t.Fatal("no refresh token stored")
	}
}

// TestAuthorizeRefusesForgedRedirect: any web page can make the browser
// request the loopback redirect address (<img src=…/callback?…>). A
// redirect with a wrong or missing state is refused with 400 and nothing
// is exchanged; the browser's noise (favicon.ico, a POST) gets 404/405;
// authorize keeps waiting, and the real redirect then completes the run.
func TestAuthorizeRefusesForgedRedirect(t *testing.T) {
	srv := egresstest.NewAuthServer("deployteq-app", "app-secret", time.Hour)
	defer srv.Close()
	path, rtFile, redirect := authCodeConfig(t, srv, "http://127.0.0.1:9")
	authURL, out, code := runAuthorize(t, path, false, strings.NewReader(""))
	base := strings.TrimSuffix(redirect, "/callback")
	for _, tc := range []struct {
		method, url string
		want        int
	}{
		{"GET", redirect + "?code=attacker-code&state=forged", http.StatusBadRequest},
		{"GET", redirect + "?code=attacker-code", http.StatusBadRequest}, // <img src=…/callback?code=…>
		{"GET", redirect, http.StatusBadRequest},                         // <img src=…/callback>
		{"GET", redirect + "?error=access_denied", http.StatusBadRequest},
		{"GET", base + "/favicon.ico", http.StatusNotFound},
		{"POST", redirect + "?code=attacker-code&state=forged", http.StatusMethodNotAllowed},
	} {
		req, _ := http.NewRequest(tc.method, tc.url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v: authorize stopped waiting for the real redirect", tc.method, tc.url, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.url, resp.StatusCode, tc.want)
		}
		select {
		case c := <-code:
			t.Fatalf("authorize ended (exit %d) on %s %s:\n%s", c, tc.method, tc.url, <-out)
		default:
		}
	}
	if n := srv.Requests(); n != 0 {
		t.Fatalf("%d token requests: a forged code was exchanged", n)
	}
	if _, err := os.Stat(rtFile); !os.IsNotExist(err) {
		t.Fatal("a refresh token file was written")
	}
	resp, err := http.Get(authURL) // the real consent still completes the run
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the real redirect: %d", resp.StatusCode)
	}
	select {
	case c := <-code:
		printed := <-out
		if c != 0 || !strings.Contains(printed, "still waiting") {
			t.Fatalf("exit %d, want 0 with a note on the refused redirects:\n%s", c, printed)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("authorize did not finish after the real redirect")
	}
	if fileContent(t, rtFile) == "" || srv.Requests() != 1 {
		t.Fatalf("want the real code exchanged once and its refresh token stored (token requests %d)", srv.Requests())
	}
}
