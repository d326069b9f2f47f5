// Package consenttest holds what the tests of an authorization-code egress
// share: a configuration for one Deployteq-like entry, and a runner that
// starts `tokengate authorize` and waits, bounded, for the URL it prints.
package consenttest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/egress/egresstest"
)

// Entry is the name of the egress entry Config writes.
const Entry = "deployteq"

// Config writes an egress-only config with one Deployteq-like
// authorization-code entry (Entry) whose redirect_uri is a free loopback
// port, and returns its path, its refresh_token_file and the redirect.
func Config(t testing.TB, srv *egresstest.AuthServer, upstream string) (path, rtFile, redirect string) {
	t.Helper()
	dir := t.TempDir()
	rtFile = filepath.Join(dir, "deployteq-refresh-token")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	redirect = "http://" + ln.Addr().String() + "/callback"
	_ = ln.Close()
	t.Setenv("TG_TEST_DEPLOYTEQ_SECRET", srv.Secret)
	y := fmt.Sprintf(`admin_listen: 127.0.0.1:0
egress:
  - name: %s
    listen: 127.0.0.1:0
    upstream: %s
    insecure_http: true
    wait_timeout: 2s
    token:
      grant: authorization_code
      url: %s
      authorize_url: %s
      redirect_uri: %s
      refresh_token_file: %s
      client_id: %s
      client_secret: "${TG_TEST_DEPLOYTEQ_SECRET}"
      scopes: ["apps.webhook:execute", offline_access]
`, Entry, upstream, srv.TokenURL(), srv.AuthorizeURL(), redirect, rtFile, srv.ClientID)
	path = filepath.Join(dir, "tokengate.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, rtFile, redirect
}

// Run starts authorize (the consent flow, writing to out) and returns the
// URL it asks to open, and channels with its exit status as the command
// would have it (0, or 1 on an error) and its whole output. It waits at
// most 10 s for the URL.
func Run(t testing.TB, authorize func(ctx context.Context, out io.Writer) error) (string, <-chan string, <-chan int) {
	t.Helper()
	pr, pw := io.Pipe()
	out := make(chan string, 1)
	code := make(chan int, 1)
	go func() {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
		defer cancel()
		c, err := 0, authorize(ctx, pw)
		if err != nil {
			c = 1
		}
		pw.CloseWithError(fmt.Errorf("exit %d: %v", c, err))
		code <- c
	}()
	urlCh := make(chan string, 1)
	go func() {
		var all strings.Builder
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			all.WriteString(line + "\n")
			if l := strings.TrimSpace(line); !sent && strings.HasPrefix(l, "http") {
				urlCh <- l
				sent = true
			}
		}
		if !sent {
			urlCh <- ""
		}
		out <- all.String()
	}()
	select {
	case u := <-urlCh:
		if u == "" {
			t.Fatalf("authorize printed no URL:\n%s", <-out)
		}
		return u, out, code
	case <-time.After(10 * time.Second):
		t.Fatal("authorize printed no URL in time")
	}
	return "", nil, nil
}
