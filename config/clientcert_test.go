package config

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSignedCA makes a CA certificate named cn, PEM-encoded.
func selfSignedCA(t *testing.T, cn string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestClientCertIssuersResolveToExactlyOneTrustAnchor(t *testing.T) {
	dir := t.TempDir()
	a, b, a2, other := selfSignedCA(t, "Partner A CA"), selfSignedCA(t, "Partner B CA"), selfSignedCA(t, "Partner A CA"), selfSignedCA(t, "Not Trusted CA")
	write := func(name string, pems ...[]byte) {
		if err := os.WriteFile(filepath.Join(dir, name), bytes.Join(pems, nil), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("cas.pem", a, b)
	write("ambiguous.pem", a, a2, b)
	write("a.pem", a)
	write("other.pem", other)
	const y = `
upstream: http://u
issuers: [{ name: idp, issuer: https://idp, audiences: [https://h] }]
tls: { cert_file: c, key_file: k, client_ca_file: %s }
routes: [{ path: /a, require: { client_cert: { %s } } }]
`
	cases := []struct {
		name, cas, cert, err string
		anchors              int
	}{
		{"a trust anchor by name", "cas.pem", `issuers: ["CN=Partner A CA"]`, "", 1},
		{"a trust anchor by file", "cas.pem", "ca_file: a.pem", "", 1},
		{"both", "cas.pem", `issuers: ["CN=Partner B CA"], ca_file: a.pem`, "", 2},
		{"no binding", "cas.pem", `subjects: ["CN=aftership"]`, "", 0},
		{"a name no anchor carries (an intermediate's, say)", "cas.pem", `issuers: ["CN=Partner A Issuing CA"]`, `routes[0].require.client_cert.issuers: "CN=Partner A Issuing CA" is the subject of no certificate in tls.client_ca_file`, 0},
		{"a name two anchors carry", "ambiguous.pem", `issuers: ["CN=Partner A CA"]`, `"CN=Partner A CA" is the subject of 2 different certificates in tls.client_ca_file: name one with ca_file`, 0},
		{"a ca_file the listener does not trust", "cas.pem", "ca_file: other.pem", `routes[0].require.client_cert.ca_file: "CN=Not Trusted CA" is not in tls.client_ca_file`, 0},
		{"an unreadable client_ca_file", "missing.pem", `issuers: ["CN=Partner A CA"]`, "tls.client_ca_file:", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse([]byte(fmt.Sprintf(y, c.cas, c.cert)), dir, env())
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := len(cfg.Routes[0].Require.ClientCert.Anchors); got != c.anchors {
				t.Fatalf("%d anchors, want %d", got, c.anchors)
			}
		})
	}
}
