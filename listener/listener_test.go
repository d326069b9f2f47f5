package listener

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

func get(t *testing.T, c *http.Client, url string) (string, *http.Response) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp
}

// TestSwapsKeepTheSocket: a new handler serves the next request, on an
// established keep-alive connection too; new TLS settings serve the next
// connections (plain → HTTPS → a new certificate → plain), all on the
// one bound address.
func TestSwapsKeepTheSocket(t *testing.T) {
	l := started(t, Options{Name: "test", Handler: text("one")})
	base := "http://" + l.Addr().String()
	c := &http.Client{Timeout: 5 * time.Second}
	var reused bool
	trace := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }})
	if body, _ := get(t, c, base); body != "one" {
		t.Fatalf("first handler: %q", body)
	}
	l.SetHandler(text("two"))
	req, _ := http.NewRequestWithContext(trace, http.MethodGet, base, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "two" || !reused {
		t.Fatalf("after SetHandler: %q on a reused connection %v, want two on the same connection", b, reused)
	}

	ca := newTestCA(t)
	setup, first := ca.setup(t)
	l.SetTLS(setup)
	https := "https://" + l.Addr().String()
	if body, resp := get(t, tlsClient(ca, false), https); body != "two" || resp.TLS.PeerCertificates[0].SerialNumber.Int64() != first {
		t.Fatalf("after SetTLS: %q", body)
	}
	fresh := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	if _, resp := get(t, fresh, base); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain HTTP on a new connection to an HTTPS listener: %d, want 400", resp.StatusCode)
	}
	next, second := ca.setup(t)
	l.SetTLS(next)
	if _, resp := get(t, tlsClient(ca, false), https); resp.TLS.PeerCertificates[0].SerialNumber.Int64() != second {
		t.Fatal("the new TLS setup's certificate is not served")
	}
	l.SetTLS(nil)
	if body, _ := get(t, fresh, base); body != "two" {
		t.Fatalf("back to plain HTTP: %q", body)
	}
}

// TestHTTP2AndHTTP1ByALPN: an HTTPS listener speaks both, and hands the
// handler the connection's TLS state.
func TestHTTP2AndHTTP1ByALPN(t *testing.T) {
	ca := newTestCA(t)
	setup, _ := ca.setup(t)
	l := started(t, Options{Name: "test", TLS: setup, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto+" "+tls.VersionName(r.TLS.Version))
	})})
	for _, h2 := range []bool{true, false} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool()}, ForceAttemptHTTP2: h2}
		if !h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		body, _ := get(t, &http.Client{Transport: tr, Timeout: 5 * time.Second}, "https://"+l.Addr().String())
		want := "HTTP/1.1 TLS 1.3"
		if h2 {
			want = "HTTP/2.0 TLS 1.3"
		}
		if body != want {
			t.Errorf("h2=%v: %q, want %q", h2, body, want)
		}
	}
}

// TestCertificateFilesReloaded: a started listener re-reads its
// certificate when the files change; established connections keep
// theirs; a broken or expired pair keeps the old one serving.
func TestCertificateFilesReloaded(t *testing.T) {
	ca := newTestCA(t)
	setup, first := ca.setup(t)
	l := started(t, Options{Name: "test", TLS: setup, Handler: text("ok")})
	url := "https://" + l.Addr().String()
	kept := tlsClient(ca, true)
	if _, resp := get(t, kept, url); resp.TLS.PeerCertificates[0].SerialNumber.Int64() != first {
		t.Fatal("not the first certificate")
	}
	_, _, second := ca.issue(t, time.Now().Add(48*time.Hour))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, resp := get(t, tlsClient(ca, false), url); resp.TLS.PeerCertificates[0].SerialNumber.Int64() == second {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("new connections did not get the new certificate within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, resp := get(t, kept, url); resp.TLS.PeerCertificates[0].SerialNumber.Int64() != first {
		t.Error("the established connection's certificate changed")
	}
	ca.write(t, "tls.crt", []byte("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n"))
	if changed, err := setup.Certificates().Reload(); changed || err == nil {
		t.Fatalf("a broken pair was taken: %v %v", changed, err)
	}
	ca.issue(t, time.Now().Add(-time.Minute))
	if changed, err := setup.Certificates().Reload(); changed || err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("an expired pair was taken: %v %v", changed, err)
	}
	if _, resp := get(t, tlsClient(ca, false), url); resp.TLS.PeerCertificates[0].SerialNumber.Int64() != second {
		t.Fatal("the serving certificate changed to a refused one")
	}
}

// TestClientCertificatesRequired: with ClientCAs, a client without a
// certificate is refused at the handshake.
func TestClientCertificatesRequired(t *testing.T) {
	ca := newTestCA(t)
	certFile, keyFile, _ := ca.issue(t, time.Now().Add(time.Hour))
	setup, err := NewTLSSetup(TLS{CertFile: certFile, KeyFile: keyFile, ClientCAs: ca.pool()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := started(t, Options{Name: "test", TLS: setup, Handler: text("ok")})
	if _, err := tlsClient(ca, false).Get("https://" + l.Addr().String()); err == nil {
		t.Fatal("a client without a certificate got an answer")
	}
}

// TestShutdownDrains: Shutdown refuses new connections at once and lets
// the request in flight finish.
func TestShutdownDrains(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	l := started(t, Options{Name: "test", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		_, _ = io.WriteString(w, "finished")
	})})
	url := "http://" + l.Addr().String()
	answer := make(chan string, 1)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			answer <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answer <- string(b)
	}()
	within(t, entered, "the request to arrive")
	stopped := make(chan error, 1)
	go func() { stopped <- l.Shutdown(context.Background()) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", l.Addr().String(), time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting connections 10s after Shutdown")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	if got := within(t, answer, "the request in flight"); got != "finished" {
		t.Fatalf("the request in flight got %q", got)
	}
	if err := within(t, stopped, "Shutdown"); err != nil {
		t.Fatal(err)
	}
}

func TestTakenPortNamesWhoHoldsIt(t *testing.T) {
	first, err := New(Options{Name: "first", Addr: "127.0.0.1:0", Handler: http.NotFoundHandler()})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	_, err = New(Options{Name: "second", Addr: first.Addr().String(), Handler: http.NotFoundHandler()})
	if err == nil {
		t.Fatal("a second listener bound a taken port")
	}
	want := "the port is taken by "
	if runtime.GOOS == "linux" {
		want += fmt.Sprintf("pid %d (", os.Getpid()) // this test process holds it
	}
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), first.Addr().String()) {
		t.Fatalf("err = %v, want it to name the address and %q", err, want)
	}
}

// TestHTTP2StreamsPerConnectionAreBounded: the server's SETTINGS frame
// allows MaxConcurrentStreams streams, not Go's default 250 (each stream
// may hold an upstream connection while its client reads nothing).
func TestHTTP2StreamsPerConnectionAreBounded(t *testing.T) {
	ca := newTestCA(t)
	setup, _ := ca.setup(t)
	l := started(t, Options{Name: "test", TLS: setup, Handler: text("ok")})
	conn, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: ca.pool(), NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no SETTINGS frame from the server: %v", err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			v, ok := sf.Value(http2.SettingMaxConcurrentStreams)
			if !ok || v != MaxConcurrentStreams {
				t.Fatalf("SETTINGS_MAX_CONCURRENT_STREAMS = %d (sent: %v), want %d", v, ok, MaxConcurrentStreams)
			}
			return
		}
	}
}
