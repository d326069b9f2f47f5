package gate

import (
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/testpki"
	"github.com/tokengate/tokengate/verifier/verifiertest"
)

// tlsGate starts tokengate on HTTPS with the given extra tls settings.
type tlsGate struct {
	s         *Gate
	url       string
	pki       *testpki.CA // issues the server certificate
	clientPKI *testpki.CA // the client CA, when client certificates are verified
	certFile  string
	keyFile   string
	idp       *verifiertest.IdP
}

// startTLSGate serves HTTPS; clientAuth "" leaves client certificates off,
// "request" or "require" verifies them against a client CA of its own.
func startTLSGate(t *testing.T, clientAuth, routes string) *tlsGate {
	t.Helper()
	g := &tlsGate{pki: testpki.New(t, "Test Root CA"), idp: verifiertest.New()}
	tlsExtra := ""
	if clientAuth != "" {
		g.clientPKI = testpki.New(t, "Client CA")
		tlsExtra = fmt.Sprintf("  client_ca_file: %s\n  client_auth: %s\n", g.clientPKI.File, clientAuth)
	}
	t.Cleanup(g.idp.Close)
	certPEM, keyPEM, _ := g.pki.Issue(t, "localhost", true, time.Now().Add(24*time.Hour))
	g.certFile, g.keyFile = g.pki.Write(t, "tls.crt", certPEM), g.pki.Write(t, "tls.key", keyPEM)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "subject="+r.Header.Get("X-Auth-Client-Cert-Subject"))
	}))
	t.Cleanup(recv.Close)
	g.s = startYAML(t, gateYAML(g.idp, recv.URL, routes)+fmt.Sprintf("tls:\n  cert_file: %s\n  key_file: %s\n%s", g.certFile, g.keyFile, tlsExtra))
	g.url = "https://" + g.s.pubLn.Addr().String()
	return g
}

const publicRoute = "  - { path: /status, public: true }\n"

func (g *tlsGate) client(h2 bool, cert *tls.Certificate, keepAlive bool) *http.Client {
	tc := &tls.Config{RootCAs: g.pki.Pool()}
	if cert != nil {
		// Always present it, even when the server's CA list does not name
		// its issuer: the server must do the refusing.
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: h2, DisableKeepAlives: !keepAlive}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

func TestHTTPSServesHTTP1AndHTTP2(t *testing.T) {
	g := startTLSGate(t, "", publicRoute)
	for _, h2 := range []bool{false, true} {
		c := g.client(h2, nil, false)
		resp, err := c.Get(g.url + "/status")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		wantMajor := 1
		if h2 {
			wantMajor = 2
		}
		if resp.StatusCode != 200 || resp.ProtoMajor != wantMajor {
			t.Fatalf("h2=%v: %d %s", h2, resp.StatusCode, resp.Proto)
		}
		if resp.TLS.Version != tls.VersionTLS13 {
			t.Errorf("negotiated %s, want TLS 1.3", tls.VersionName(resp.TLS.Version))
		}
		t.Logf("negotiated %s, ALPN %q, %s", tls.VersionName(resp.TLS.Version), resp.TLS.NegotiatedProtocol, resp.Proto)
	}
	// TLS 1.1 is refused.
	_, err := tls.Dial("tcp", strings.TrimPrefix(g.url, "https://"), &tls.Config{RootCAs: g.pki.Pool(), MaxVersion: tls.VersionTLS11})
	if err == nil {
		t.Fatal("a TLS 1.1 handshake succeeded")
	}
}

func serialOf(resp *http.Response) int64 { return resp.TLS.PeerCertificates[0].SerialNumber.Int64() }

func TestCertificateRotationOnDiskWithoutDroppingConnections(t *testing.T) {
	g := startTLSGate(t, "", publicRoute)
	old := g.client(false, nil, true)
	var reused bool
	get := func(c *http.Client) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, g.url+"/status", nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	first := serialOf(get(old))
	certPEM, keyPEM, newSerial := g.pki.Issue(t, "localhost", true, time.Now().Add(48*time.Hour))
	// cert-manager style: the key, then the certificate, replaced in place.
	changed := time.Now()
	g.pki.Write(t, "tls.key", keyPEM)
	g.pki.Write(t, "tls.crt", certPEM)
	var took time.Duration
	eventually(t, "new connections get the new certificate", func() bool {
		if serialOf(get(g.client(false, nil, false))) == newSerial {
			took = time.Since(changed)
			return true
		}
		return false
	})
	t.Logf("certificate change picked up by new connections after %v", took)
	resp := get(old)
	if !reused || serialOf(resp) != first || resp.StatusCode != 200 {
		t.Fatalf("the established connection was disturbed: reused=%v serial=%d status=%d", reused, serialOf(resp), resp.StatusCode)
	}
}

func TestBrokenNewCertificateKeepsTheOldOne(t *testing.T) {
	g := startTLSGate(t, "", publicRoute)
	resp, err := g.client(false, nil, false).Get(g.url + "/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	before := serialOf(resp)
	g.pki.Write(t, "tls.crt", []byte("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n"))
	if changed, err := g.s.pubLn.TLS().Certificates().Reload(); changed || err == nil {
		t.Fatalf("a broken certificate was taken: changed=%v err=%v", changed, err)
	}
	// An expired pair is refused too.
	certPEM, keyPEM, _ := g.pki.Issue(t, "localhost", true, time.Now().Add(-time.Minute))
	g.pki.Write(t, "tls.key", keyPEM)
	g.pki.Write(t, "tls.crt", certPEM)
	if changed, err := g.s.pubLn.TLS().Certificates().Reload(); changed || err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("an expired certificate was taken: changed=%v err=%v", changed, err)
	}
	resp, err = g.client(false, nil, false).Get(g.url + "/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if serialOf(resp) != before {
		t.Fatal("the serving certificate changed")
	}
}

func TestClientCertificates(t *testing.T) {
	routes := publicRoute + "  - { path: /partner, require: { client_cert: { subjects: [\"CN=aftership\"] } } }\n" +
		"  - { path: /other, require: { client_cert: { subjects: [\"CN=somebody-else\"] } } }\n"
	for _, mode := range []string{"require", "request"} {
		t.Run(mode, func(t *testing.T) {
			g := startTLSGate(t, mode, routes)
			certPEM, keyPEM, _ := g.clientPKI.Issue(t, "aftership", false, time.Now().Add(time.Hour))
			pair, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			tok := g.idp.Mint(g.idp.Claims(testAud, "webhooks:write"))
			post := func(c *http.Client, path string) (int, string, error) {
				req, _ := http.NewRequest(http.MethodPost, g.url+path, strings.NewReader("{}"))
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := c.Do(req)
				if err != nil {
					return 0, "", err
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return resp.StatusCode, string(b), nil
			}
			code, body, err := post(g.client(false, &pair, false), "/partner")
			if err != nil || code != 200 || body != "subject=CN=aftership" {
				t.Fatalf("with the right certificate: %d %q %v", code, body, err)
			}
			if code, _, err := post(g.client(false, &pair, false), "/other"); err != nil || code != 403 {
				t.Fatalf("certificate with another subject: %d %v, want 403", code, err)
			}
			code, _, err = post(g.client(false, nil, false), "/partner")
			switch mode {
			case "require":
				if err == nil {
					t.Fatalf("no client certificate, require: the handshake succeeded (%d)", code)
				}
			case "request":
				if err != nil || code != 403 {
					t.Fatalf("no client certificate, request: %d %v, want 403", code, err)
				}
			}
			// A certificate from another CA is refused at the handshake in both modes.
			other := testpki.New(t, "Other CA")
			oc, ok, _ := other.Issue(t, "aftership", false, time.Now().Add(time.Hour))
			opair, _ := tls.X509KeyPair(oc, ok)
			if _, _, err := post(g.client(false, &opair, false), "/partner"); err == nil {
				t.Fatal("a certificate from an unknown CA was accepted")
			}
		})
	}
}

func TestUpstreamWithASelfSignedCAWorksOnlyWithCAFile(t *testing.T) {
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "tls upstream") }))
	defer up.Close()
	caFile := filepath.Join(t.TempDir(), "upstream-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: up.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	idp := verifiertest.New()
	defer idp.Close()
	for _, c := range []struct {
		name, upstream string
		want           int
	}{
		{"system roots only", fmt.Sprintf("upstream: %s\n", up.URL), 502},
		{"with ca_file", fmt.Sprintf("upstream: { url: %s, ca_file: %s }\n", up.URL, caFile), 200},
		{"with ca_file and a wrong server_name", fmt.Sprintf("upstream: { url: %s, ca_file: %s, server_name: wrong.example }\n", up.URL, caFile), 502},
	} {
		t.Run(c.name, func(t *testing.T) {
			y := strings.Replace(gateYAML(idp, "http://placeholder", publicRoute), "upstream: http://placeholder\n", c.upstream, 1)
			s := startYAML(t, y)
			resp, err := http.Get("http://" + s.pubLn.Addr().String() + "/status")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.want)
			}
		})
	}
}

// TestPublicTLSChangedOnReload: a tls block added to the public listener
// by a reload serves HTTPS at the same address for new connections (it
// took a restart before); removing it serves plain HTTP again.
func TestPublicTLSChangedOnReload(t *testing.T) {
	r := startRunning(t, false, "")
	p := testpki.New(t, "Test Root CA")
	certPEM, keyPEM, serial := p.Issue(t, "localhost", true, time.Now().Add(24*time.Hour))
	certFile, keyFile := p.Write(t, "tls.crt", certPEM), p.Write(t, "tls.key", keyPEM)
	plainYAML := gateYAML(r.idp, r.recv.URL, hooksRoute+publicRoute)
	r.write(plainYAML)
	eventually(t, "the public route to be served", func() bool { code, _ := r.get(r.pub + "/status"); return code == 200 })
	r.write(plainYAML + fmt.Sprintf("tls:\n  cert_file: %s\n  key_file: %s\n", certFile, keyFile))
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.Pool()}, DisableKeepAlives: true}}
	https := strings.Replace(r.pub, "http://", "https://", 1) + "/status"
	eventually(t, "HTTPS at the public address", func() bool {
		resp, err := c.Get(https)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200 && serialOf(resp) == serial
	})
	r.write(plainYAML)
	plain := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	eventually(t, "plain HTTP again", func() bool {
		resp, err := plain.Get(r.pub + "/status")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}
