package config

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"path/filepath"
)

// ClientCert restricts which verified client certificates a route accepts.
// Without CAFile and Issuers it accepts any certificate verified against
// tls.client_ca_file.
type ClientCert struct {
	// CAFile holds the CA certificate(s), PEM, the route's clients must
	// chain to; each must also be in tls.client_ca_file. A certificate is
	// accepted when a verified chain ends at one of them: the trust anchor
	// itself (its public key), never a name another CA could also issue.
	CAFile string `yaml:"ca_file"`
	// Issuers name trust anchors by subject, as Go prints it ("CN=Partner
	// CA,O=Partner"): each must be the subject of exactly one CA
	// certificate in tls.client_ca_file (an intermediate's name never
	// counts), and binds the route to that certificate like CAFile.
	Issuers []string `yaml:"issuers"`
	// Subjects: the certificate's subject, same form ("CN=aftership").
	Subjects []string `yaml:"subjects"`

	// Anchors are the trust anchors CAFile and Issuers resolve to at load.
	Anchors []*x509.Certificate `yaml:"-"`
}

// Bound reports whether the route accepts only chains ending at Anchors.
func (c *ClientCert) Bound() bool { return c.CAFile != "" || len(c.Issuers) > 0 }

// clientCertAnchors resolves every route's client_cert ca_file and issuers
// to certificates of tls.client_ca_file (read only when a route needs it).
func (c *Config) clientCertAnchors(dir string) []error {
	var errs []error
	var pool []*x509.Certificate
	poolRead := false
	for i := range c.Routes {
		cc := c.Routes[i].Require.ClientCert
		if cc == nil {
			continue
		}
		cc.Anchors = nil
		if c.TLS == nil || c.TLS.ClientCAFile == "" {
			continue // validation says what is missing
		}
		if !poolRead {
			poolRead = true
			var err error
			if pool, err = readCertificates(c.TLS.ClientCAFile); err != nil {
				errs = append(errs, c.fieldErr("tls.client_ca_file", "%v", err))
			}
			c.TLS.ClientCAs = pool
		}
		if pool == nil || !cc.Bound() {
			continue
		}
		p := fmt.Sprintf("routes[%d].require.client_cert", i)
		if cc.CAFile != "" {
			if !filepath.IsAbs(cc.CAFile) {
				cc.CAFile = filepath.Join(dir, cc.CAFile)
			}
			certs, err := readCertificates(cc.CAFile)
			if err != nil {
				errs = append(errs, c.fieldErr(p+".ca_file", "%v", err))
			}
			for _, ca := range certs {
				if len(sameKey(pool, ca)) == 0 {
					errs = append(errs, c.fieldErr(p+".ca_file", "%q is not in tls.client_ca_file: no client certificate is verified against it", ca.Subject.String()))
					continue
				}
				cc.Anchors = append(cc.Anchors, ca)
			}
		}
		for _, name := range cc.Issuers {
			var named []*x509.Certificate
			for _, ca := range pool {
				if ca.Subject.String() == name && len(sameKey(named, ca)) == 0 {
					named = append(named, ca)
				}
			}
			switch len(named) {
			case 1:
				cc.Anchors = append(cc.Anchors, named[0])
			case 0:
				errs = append(errs, c.fieldErr(p+".issuers", "%q is the subject of no certificate in tls.client_ca_file (only a trust anchor can be named, never an intermediate CA)", name))
			default:
				errs = append(errs, c.fieldErr(p+".issuers", "%q is the subject of %d different certificates in tls.client_ca_file: name one with ca_file", name, len(named)))
			}
		}
	}
	return errs
}

// sameKey returns the certificates of certs holding ca's public key.
func sameKey(certs []*x509.Certificate, ca *x509.Certificate) []*x509.Certificate {
	var out []*x509.Certificate
	for _, c := range certs {
		if bytes.Equal(c.RawSubjectPublicKeyInfo, ca.RawSubjectPublicKeyInfo) {
			out = append(out, c)
		}
	}
	return out
}

// readCertificates parses every PEM certificate in a file.
func readCertificates(path string) ([]*x509.Certificate, error) {
	data, err := readSmallFile(path)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, cert)
	}
	if len(out) == 0 {
		return nil, errors.New(path + ": no PEM certificate")
	}
	return out, nil
}
