package gate

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/testpki"
)

// egressFixture is a running egress-only gate whose config the test
// rewrites and reloads.
type egressFixture struct {
	t    *testing.T
	s    *Gate
	path string
}

func (f *egressFixture) write(entries string) {
	f.t.Helper()
	if err := os.WriteFile(f.path, []byte("admin_listen: 127.0.0.1:0\negress:"+entries), 0o600); err != nil {
		f.t.Fatal(err)
	}
}

func (f *egressFixture) reload(entries string) {
	f.t.Helper()
	f.write(entries)
	if err := f.s.Reload(f.t.Context(), "test"); err != nil {
		f.t.Fatalf("reload: %v", err)
	}
}

// TestEgressReloadRenamesAndSwapsAddresses: listeners belong to listen
// addresses, not entry names. Renaming an entry, and two entries
// swapping their addresses, are reloads like any other: the sockets stay
// open and each address then serves the entry that names it (before, the
// reload failed with "address already in use").
func TestEgressReloadRenamesAndSwapsAddresses(t *testing.T) {
	e, up := vendor(t, "s3cret", time.Hour)
	t.Setenv("TG_TEST_EGRESS_SECRET", "s3cret")
	addr1, addr2 := freeAddr(t), freeAddr(t)
	entry := func(name, addr string) string {
		return fmt.Sprintf(`
  - name: %s
    listen: %s
    upstream: %s/%s
    insecure_http: true
    token: { url: %s, client_id: client, client_secret: "${TG_TEST_EGRESS_SECRET}" }
`, name, addr, up.URL, name, e.URL)
	}
	f := &egressFixture{t: t, path: filepath.Join(t.TempDir(), "tokengate.yaml")}
	f.write(entry("a", addr1) + entry("b", addr2))
	f.s = startAt(t, f.path)
	reaches := func(addr, want string) {
		t.Helper()
		resp, err := http.Post("http://"+addr+"/x", "text/plain", strings.NewReader("hi"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		seen := up.Seen()
		if resp.StatusCode != http.StatusOK || len(seen) == 0 || seen[len(seen)-1].Path != "/"+want+"/x" {
			t.Fatalf("%s: status %d, want entry %s's upstream", addr, resp.StatusCode, want)
		}
	}
	reaches(addr1, "a")
	reaches(addr2, "b")
	f.reload(entry("c", addr1) + entry("b", addr2)) // a renamed to c
	reaches(addr1, "c")
	reaches(addr2, "b")
	f.reload(entry("c", addr2) + entry("b", addr1)) // c and b swap addresses
	reaches(addr1, "b")
	reaches(addr2, "c")
	if got := f.s.eg.addrs(); got["b"] != addr1 || got["c"] != addr2 || len(got) != 2 {
		t.Fatalf("entries' addresses %v", got)
	}
}

// TestEgressTLSOnReload: an egress listener's certificate files are
// re-read when they change, like the public listener's (before, an egress
// kept its first certificate until it expired), and a tls block added to
// an entry on reload serves HTTPS at the same address at once.
func TestEgressTLSOnReload(t *testing.T) {
	e, up := vendor(t, "s3cret", time.Hour)
	t.Setenv("TG_TEST_EGRESS_SECRET", "s3cret")
	p := testpki.New(t, "Egress CA")
	certPEM, keyPEM, first := p.Issue(t, "localhost", true, time.Now().Add(24*time.Hour))
	certFile, keyFile := p.Write(t, "egress.crt", certPEM), p.Write(t, "egress.key", keyPEM)
	addr := freeAddr(t)
	entry := func(tlsBlock string) string {
		return fmt.Sprintf(`
  - name: vendor
    listen: %s
    upstream: %s
    insecure_http: true
    token: { url: %s, client_id: client, client_secret: "${TG_TEST_EGRESS_SECRET}" }
%s`, addr, up.URL, e.URL, tlsBlock)
	}
	f := &egressFixture{t: t, path: filepath.Join(t.TempDir(), "tokengate.yaml")}
	f.write(entry(""))
	f.s = startAt(t, f.path)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.Pool()}, DisableKeepAlives: true}}
	call := func(scheme string) (*http.Response, error) {
		resp, err := client.Post(scheme+"://"+addr+"/x", "text/plain", strings.NewReader("hi"))
		if err == nil {
			resp.Body.Close()
		}
		return resp, err
	}
	if resp, err := call("http"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("plain HTTP before: %v", err)
	}
	f.reload(entry(fmt.Sprintf("    tls: { cert_file: %s, key_file: %s }\n", certFile, keyFile)))
	resp, err := call("https")
	if err != nil || resp.StatusCode != http.StatusOK || serialOf(resp) != first {
		t.Fatalf("HTTPS at the same address after the reload: %v", err)
	}
	certPEM, keyPEM, next := p.Issue(t, "localhost", true, time.Now().Add(48*time.Hour))
	p.Write(t, "egress.key", keyPEM)
	p.Write(t, "egress.crt", certPEM)
	eventually(t, "new egress connections to get the new certificate", func() bool {
		resp, err := call("https")
		return err == nil && serialOf(resp) == next
	})
}

// TestEgressKeepAliveAcrossAReloadToClientCertificates: a reload makes an
// egress listener require client certificates (so its handler no longer
// insists on a loopback Host). A keep-alive connection opened before, in
// plain HTTP and with no certificate, must not gain from it: a request
// on it addressed to a re-bound name still gets 421, and nothing reaches
// the vendor.
func TestEgressKeepAliveAcrossAReloadToClientCertificates(t *testing.T) {
	e, up := vendor(t, "s3cret", time.Hour)
	t.Setenv("TG_TEST_EGRESS_SECRET", "s3cret")
	server, clients := testpki.New(t, "Egress CA"), testpki.New(t, "App CA")
	certPEM, keyPEM, _ := server.Issue(t, "localhost", true, time.Now().Add(time.Hour))
	certFile, keyFile := server.Write(t, "egress.crt", certPEM), server.Write(t, "egress.key", keyPEM)
	addr := freeAddr(t)
	entry := func(tlsBlock string) string {
		return fmt.Sprintf(`
  - name: vendor
    listen: %s
    upstream: %s
    insecure_http: true
    token: { url: %s, client_id: client, client_secret: "${TG_TEST_EGRESS_SECRET}" }
%s`, addr, up.URL, e.URL, tlsBlock)
	}
	f := &egressFixture{t: t, path: filepath.Join(t.TempDir(), "tokengate.yaml")}
	f.write(entry(""))
	f.s = startAt(t, f.path)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	send := func(host string) int {
		t.Helper()
		fmt.Fprintf(c, "POST /x HTTP/1.1\r\nHost: %s\r\nContent-Length: 2\r\n\r\nhi", host)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := send("localhost"); code != http.StatusOK {
		t.Fatalf("before the reload: %d", code)
	}
	f.reload(entry(fmt.Sprintf("    tls: { cert_file: %s, key_file: %s, client_ca_file: %s }\n", certFile, keyFile, clients.File)))
	before := len(up.Seen())
	if code := send("rebound.example"); code != http.StatusMisdirectedRequest {
		t.Fatalf("a re-bound name on the old plain connection: %d, want 421", code)
	}
	if len(up.Seen()) != before {
		t.Fatal("the request reached the vendor")
	}
}
