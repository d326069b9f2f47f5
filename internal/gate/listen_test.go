package gate

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/verifier/verifiertest"
)

// endless is an upstream whose answer to /stream?id=ID never ends (up to
// 1 GiB); cut receives ID when writing it fails, that is when tokengate
// dropped the request.
func endless(t *testing.T) (*httptest.Server, <-chan string) {
	t.Helper()
	cut := make(chan string, 8)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/stream") {
			_, _ = io.WriteString(w, "ok")
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		buf := make([]byte, 32<<10)
		for range 1 << 15 {
			if _, err := w.Write(buf); err != nil {
				cut <- r.URL.Query().Get("id")
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv, cut
}

// sides starts a gate whose public route /stream and egress entry
// "vendor" both lead to an endless answer, and returns the three
// listeners' addresses and the upstream's cut signal.
func sides(t *testing.T) (map[string]string, <-chan string) {
	t.Helper()
	up, cut := endless(t)
	idp := verifiertest.New()
	t.Cleanup(idp.Close)
	e, _ := vendor(t, "s3cret", time.Hour)
	t.Setenv("TG_TEST_EGRESS_SECRET", "s3cret")
	s := startShort(t, gateYAML(idp, up.URL, "  - { path: /stream, public: true }\n")+fmt.Sprintf(`
egress:
  - name: vendor
    listen: 127.0.0.1:0
    upstream: %s
    insecure_http: true
    token: { url: %s, client_id: client, client_secret: "${TG_TEST_EGRESS_SECRET}" }
`, up.URL, e.URL))
	return map[string]string{"public": s.pubLn.Addr().String(), "admin": s.adminLn.Addr().String(), "egress": s.eg.addrs()["vendor"]}, cut
}

// closedWithin reports whether the server closes c within 10s, reading
// (and dropping) whatever it sends first.
func closedWithin(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// TestEveryListenerBoundsItsClients: on the public, admin and egress
// listeners alike, a connection that sends nothing is closed after
// ReadHeaderTimeout, one that sends half a request head too, a keep-alive
// connection left idle after IdleTimeout, and a request head above
// MaxHeaderBytes gets 431.
func TestEveryListenerBoundsItsClients(t *testing.T) {
	addrs, _ := sides(t)
	for _, side := range []string{"public", "admin", "egress"} {
		addr := addrs[side]
		t.Run(side, func(t *testing.T) {
			for _, tc := range []struct{ name, send string }{
				{"silent", ""},
				{"half a head", "GET /healthz HTTP/1.1\r\nHost: localhost\r\n"},
				{"idle keep-alive", "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"},
			} {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.WriteString(c, tc.send)
				if !closedWithin(c) {
					t.Errorf("%s: the connection was still open after 10s", tc.name)
				}
				c.Close()
			}
			req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/healthz", nil)
			req.Header.Set("X-Big", strings.Repeat("a", 300<<10))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("a 300 KiB request head: %d, want 431", resp.StatusCode)
			}
		})
	}
}

// TestClientThatNeverReadsIsCutOff: a client asks for a large answer
// (here an endless one) and never reads it. Once its window is full the
// listener's writes stall; after WriteStall the connection is closed, and
// the upstream's request ends with it, on the public and egress sides.
func TestClientThatNeverReadsIsCutOff(t *testing.T) {
	addrs, cut := sides(t)
	for _, side := range []string{"public", "egress"} {
		t.Run(side, func(t *testing.T) {
			c, err := net.Dial("tcp", addrs[side])
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close() // without the bound, this is what ends the request
			if _, err := io.WriteString(c, "GET /stream?id="+side+" HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil) // the head only; the body is never read
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("answer head: %v %v", resp, err)
			}
			deadline := time.After(20 * time.Second)
			for {
				select {
				case id := <-cut:
					if id == side {
						return
					}
				case <-deadline:
					t.Fatal("the upstream was still writing to a client that reads nothing after 20s")
				}
			}
		})
	}
}
