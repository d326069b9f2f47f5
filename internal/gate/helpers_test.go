package gate

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/egress/egresstest"
	"github.com/tokengate/tokengate/internal/consent"
	"github.com/tokengate/tokengate/internal/consent/consenttest"
	"github.com/tokengate/tokengate/listener"
)

// start runs New and Start on the config at path, logging nowhere.
func start(ctx context.Context, path string) (*Gate, error) {
	return startWith(ctx, path, Options{})
}

func startWith(ctx context.Context, path string, o Options) (*Gate, error) {
	g, err := New(path, o)
	if err != nil {
		return nil, err
	}
	if err := g.Start(ctx); err != nil {
		return nil, err
	}
	return g, nil
}

// startAt starts tokengate on the config at path; it stops with the test.
func startAt(t *testing.T, path string) *Gate {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := start(ctx, path)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = s.Shutdown(context.Background()) })
	return s
}

// startYAML writes y to a fresh config file and starts tokengate on it.
func startYAML(t *testing.T, y string) *Gate {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokengate.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return startAt(t, path)
}

// eventually polls cond for up to 30s (a busy machine is slow; the property is that it happens); file watching and key fetching are
// asynchronous by nature.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// shortTimeouts make the listeners' bounds observable in a test.
var shortTimeouts = listener.Timeouts{ReadHeader: 300 * time.Millisecond, Idle: 500 * time.Millisecond, WriteStall: 500 * time.Millisecond}

// startShort starts tokengate on the config y with shortTimeouts.
func startShort(t *testing.T, y string) *Gate {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokengate.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := startWith(ctx, path, Options{Timeouts: shortTimeouts})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = s.Shutdown(context.Background()) })
	return s
}

// freeAddr returns a loopback address nobody listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// vendor is a token endpoint for client "client" with tokens of the given
// lifetime and an upstream that checks them, both closed with the test.
func vendor(t *testing.T, secret string, ttl time.Duration) (*egresstest.TokenEndpoint, *egresstest.Upstream) {
	t.Helper()
	e := egresstest.NewTokenEndpoint("client", secret, ttl)
	t.Cleanup(e.Close)
	up := egresstest.NewUpstream(e)
	t.Cleanup(up.Close)
	return e, up
}

// authCodeConfig writes an egress-only config with one authorization-code
// entry, "deployteq" (consenttest.Config).
func authCodeConfig(t *testing.T, srv *egresstest.AuthServer, upstream string) (path, rtFile, redirect string) {
	return consenttest.Config(t, srv, upstream)
}

// runAuthorize starts `tokengate authorize` for "deployteq" and returns
// the URL it asks to open and channels with its exit status and output.
func runAuthorize(t *testing.T, path string, paste bool, stdin io.Reader) (string, <-chan string, <-chan int) {
	return consenttest.Run(t, func(ctx context.Context, out io.Writer) error {
		return consent.Authorize(ctx, path, consenttest.Entry, paste, stdin, out)
	})
}

func fileContent(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// waitFor receives from ch within 10s or fails the test naming what.
func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

// write writes data to dir/name and returns its path.
func write(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
