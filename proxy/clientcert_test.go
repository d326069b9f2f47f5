package proxy

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// certKey is a generated certificate with its key.
type certKey struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// issueCert makes a certificate for subject, signed by parent (nil:
// self-signed). CAs may sign; leaves are for client authentication.
func issueCert(t *testing.T, subject pkix.Name, parent *certKey, isCA bool) *certKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: subject,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		BasicConstraintsValid: true, IsCA: isCA,
	}
	if isCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	signerCert, signerKey := tmpl, crypto.Signer(key)
	if parent != nil {
		signerCert, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, key.Public(), signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &certKey{cert, key}
}

// writePEM writes certificates to a file in dir and returns its path.
func writePEM(t *testing.T, dir, name string, certs ...*certKey) string {
	t.Helper()
	var b strings.Builder
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.cert.Raw})
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// tlsPair is a client's certificate chain for tls.Config.
func tlsPair(leaf *certKey, chain ...*certKey) tls.Certificate {
	c := tls.Certificate{Certificate: [][]byte{leaf.cert.Raw}, PrivateKey: leaf.key, Leaf: leaf.cert}
	for _, ca := range chain {
		c.Certificate = append(c.Certificate, ca.cert.Raw)
	}
	return c
}

func TestClientCertIssuerIsTheTrustAnchorNotAName(t *testing.T) {
	dir := t.TempDir()
	nameA := pkix.Name{CommonName: "Partner A CA", Organization: []string{"Partner A"}}
	rootA := issueCert(t, nameA, nil, true)
	rootB := issueCert(t, pkix.Name{CommonName: "Partner B CA", Organization: []string{"Partner B"}}, nil, true)
	// Partner B, whose CA the gate also trusts, mints an intermediate
	// carrying A's CA's name and issues itself a client certificate.
	forged := issueCert(t, nameA, rootB, true)
	client := pkix.Name{CommonName: "aftership"}
	leafA := issueCert(t, client, rootA, false)
	leafForged := issueCert(t, client, forged, false)
	leafB := issueCert(t, client, rootB, false)

	cas := writePEM(t, dir, "client-cas.pem", rootA, rootB)
	aFile := writePEM(t, dir, "partner-a.pem", rootA)
	routes := "  - { path: /hooks/a-by-name, require: { client_cert: { issuers: [\"" + rootA.cert.Subject.String() + "\"] } } }\n" +
		"  - { path: /hooks/a-by-file, require: { client_cert: { ca_file: " + aFile + " } } }\n" +
		"  - { path: /hooks/any-cert, require: { client_cert: {} } }\n"
	e := newEnv(t, routes+"tls: { cert_file: unused.crt, key_file: unused.key, client_ca_file: "+cas+", client_auth: request }\n")
	h, err := New(e.cfg, e.cache, Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	pool := x509.NewCertPool()
	pool.AddCert(rootA.cert)
	pool.AddCert(rootB.cert)
	srv.TLS = &tls.Config{ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	serverRoots := x509.NewCertPool()
	serverRoots.AddCert(srv.Certificate())

	tok := e.token("webhooks:write")
	post := func(path string, pair tls.Certificate) int {
		t.Helper()
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: serverRoots, GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil },
		}}}
		defer c.CloseIdleConnections()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader("{}"))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	cases := []struct {
		name, path string
		pair       tls.Certificate
		want       int
	}{
		{"A's client, route bound by name", "/hooks/a-by-name", tlsPair(leafA), 200},
		{"A's client, route bound by ca_file", "/hooks/a-by-file", tlsPair(leafA), 200},
		{"B's forged intermediate named like A's CA, by name", "/hooks/a-by-name", tlsPair(leafForged, forged), 403},
		{"B's forged intermediate named like A's CA, by ca_file", "/hooks/a-by-file", tlsPair(leafForged, forged), 403},
		{"B's own client, by name", "/hooks/a-by-name", tlsPair(leafB), 403},
		{"B's forged chain is verified: an unbound route takes it", "/hooks/any-cert", tlsPair(leafForged, forged), 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := post(c.path, c.pair); got != c.want {
				t.Fatalf("status %d, want %d", got, c.want)
			}
		})
	}
}

// TestRemovedClientCAStopsConnectionsOpenedBeforeTheReload: a connection
// whose chain was verified while a CA was trusted keeps its verified
// chain after a reload removes that CA; the new configuration's routes
// refuse it on its next request (a keep-alive connection cannot outlive
// the trust it was opened with).
func TestRemovedClientCAStopsConnectionsOpenedBeforeTheReload(t *testing.T) {
	dir := t.TempDir()
	rootA := issueCert(t, pkix.Name{CommonName: "Partner A CA"}, nil, true)
	rootB := issueCert(t, pkix.Name{CommonName: "Partner B CA"}, nil, true)
	leafA := issueCert(t, pkix.Name{CommonName: "aftership"}, rootA, false)
	routes := "  - { path: /hooks/subject, require: { client_cert: { subjects: [\"CN=aftership\"] } } }\n"
	handler := func(caFile string) http.Handler {
		e := newEnv(t, routes+"tls: { cert_file: unused.crt, key_file: unused.key, client_ca_file: "+caFile+", client_auth: request }\n")
		h, err := New(e.cfg, e.cache, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	var current atomic.Pointer[http.Handler]
	before := handler(writePEM(t, dir, "both.pem", rootA, rootB))
	current.Store(&before)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*current.Load()).ServeHTTP(w, r) }))
	pool := x509.NewCertPool()
	pool.AddCert(rootA.cert)
	pool.AddCert(rootB.cert)
	srv.TLS = &tls.Config{ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	pair := tlsPair(leafA)
	var handshakes atomic.Int32
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: roots, GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			handshakes.Add(1)
			return &pair, nil
		},
	}}}
	defer client.CloseIdleConnections()
	get := func() int {
		t.Helper()
		resp, err := client.Get(srv.URL + "/hooks/subject")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get(); got != http.StatusUnauthorized { // the certificate passes; no token was sent
		t.Fatalf("A's client while A is trusted: %d, want 401 (past the certificate check)", got)
	}
	after := handler(writePEM(t, dir, "only-b.pem", rootB)) // the reload removes A
	current.Store(&after)
	if got := get(); got != http.StatusForbidden {
		t.Fatalf("A's client on its open connection after A was removed: %d, want 403", got)
	}
	if n := handshakes.Load(); n != 1 {
		t.Fatalf("%d handshakes: the second request did not reuse the connection", n)
	}
}
