package listener

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// CertPollInterval is the fallback when file events are missed (some
// network file systems send none).
const CertPollInterval = 30 * time.Second

// TLS describes a listener's HTTPS.
type TLS struct {
	// CertFile is the PEM certificate chain; KeyFile its private key.
	CertFile, KeyFile string
	// ClientCAs, when set, verifies client certificates against these
	// CAs; ClientAuth is then tls.RequireAndVerifyClientCert (refused at
	// the handshake without one) or tls.VerifyClientCertIfGiven.
	ClientCAs  *x509.CertPool
	ClientAuth tls.ClientAuthType
}

// TLSSetup is a TLS description made ready to serve: the certificate
// loaded (and re-read when its files change, once a listener serves it)
// and the tls.Config built: TLS 1.2 at least (1.3 preferred by Go), Go's
// default cipher suites, HTTP/2 and HTTP/1.1 by ALPN.
type TLSSetup struct {
	certs  *CertReloader
	config *tls.Config
}

// NewTLSSetup loads t's certificate; it fails if the pair does not load
// or is not valid now.
func NewTLSSetup(t TLS, log *zap.Logger) (*TLSSetup, error) {
	if log == nil {
		log = zap.NewNop()
	}
	certs, err := NewCertReloader(t.CertFile, t.KeyFile, log)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: certs.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}
	if t.ClientCAs != nil {
		tc.ClientCAs = t.ClientCAs
		tc.ClientAuth = t.ClientAuth
		if tc.ClientAuth != tls.VerifyClientCertIfGiven {
			tc.ClientAuth = tls.RequireAndVerifyClientCert // never less than verified
		}
	}
	return &TLSSetup{certs: certs, config: tc}, nil
}

// Certificates is the setup's certificate reloader.
func (s *TLSSetup) Certificates() *CertReloader { return s.certs }

// CertReloader serves a certificate and re-reads it when its files change
// (cert-manager and Kubernetes Secret updates swap files in place). A new
// pair that does not load keeps the old one serving.
type CertReloader struct {
	certFile, keyFile string
	log               *zap.Logger
	cur               atomic.Pointer[tls.Certificate]
	mu                sync.Mutex
	sum               [32]byte
}

// NewCertReloader loads the pair; it fails if the pair does not load or
// is not valid now.
func NewCertReloader(certFile, keyFile string, log *zap.Logger) (*CertReloader, error) {
	c := &CertReloader{certFile: certFile, keyFile: keyFile, log: log}
	if _, err := c.Reload(); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return c, nil
}

// GetCertificate is tls.Config.GetCertificate: each new handshake gets the
// current certificate; established connections keep theirs.
func (c *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.cur.Load(), nil
}

// LoadPair reads and checks a certificate and key: they must parse, match,
// and the certificate must be valid at now. The sum identifies the files'
// content.
func LoadPair(certFile, keyFile string, now time.Time) (*tls.Certificate, [32]byte, error) {
	var sum [32]byte
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, sum, &PairError{File: "cert_file", Err: err}
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, sum, &PairError{File: "key_file", Err: err}
	}
	sum = sha256.Sum256(append(append([]byte{}, certPEM...), keyPEM...))
	if !hasPEM(certPEM, "CERTIFICATE") {
		return nil, sum, &PairError{File: "cert_file", Err: fmt.Errorf("no PEM certificate in %s", certFile)}
	}
	if !hasPEM(keyPEM, "PRIVATE KEY") {
		return nil, sum, &PairError{File: "key_file", Err: fmt.Errorf("no PEM private key in %s", keyFile)}
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, sum, fmt.Errorf("certificate and key do not load as a pair: %w", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, sum, err
	}
	pair.Leaf = leaf
	if now.After(leaf.NotAfter) {
		return nil, sum, fmt.Errorf("certificate expired on %s", leaf.NotAfter.Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return nil, sum, fmt.Errorf("certificate not valid before %s", leaf.NotBefore.Format(time.RFC3339))
	}
	return &pair, sum, nil
}

// Reload loads the files if they changed; it reports whether the serving
// certificate was replaced.
func (c *CertReloader) Reload() (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pair, sum, err := LoadPair(c.certFile, c.keyFile, time.Now())
	if sum == c.sum && c.cur.Load() != nil {
		return false, nil // unchanged (or changed back to what is serving)
	}
	if err != nil {
		c.sum = sum // do not log the same broken pair on every event
		return false, err
	}
	c.sum = sum
	c.cur.Store(pair)
	return true, nil
}

// Watch re-reads the pair on file events in their directories and every
// CertPollInterval, until ctx ends.
func (c *CertReloader) Watch(ctx context.Context) {
	dirs := []string{filepath.Dir(c.certFile)}
	if d := filepath.Dir(c.keyFile); d != dirs[0] {
		dirs = append(dirs, d)
	}
	all := func(fsnotify.Event) bool { return true }
	if err := WatchFiles(ctx, dirs, all, CertPollInterval, c.reloadAndLog); err != nil {
		c.log.Warn("certificate directory not watched; polling only", zap.Strings("dirs", dirs), zap.Error(err))
	}
}

func (c *CertReloader) reloadAndLog() {
	changed, err := c.Reload()
	switch {
	case err != nil:
		c.log.Error("new TLS certificate refused; still serving the previous one", zap.String("cert_file", c.certFile), zap.Error(err))
	case changed:
		leaf := c.cur.Load().Leaf
		c.log.Info("TLS certificate reloaded", zap.String("subject", leaf.Subject.String()), zap.Time("not_after", leaf.NotAfter))
	}
}

// PairError says which file of a certificate pair is at fault: "cert_file"
// or "key_file", so that messages name the setting to fix.
type PairError struct {
	File string
	Err  error
}

// Error names the setting and the cause.
func (e *PairError) Error() string { return e.File + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *PairError) Unwrap() error { return e.Err }

// hasPEM reports whether b holds a PEM block whose type ends with kind
// ("CERTIFICATE"; "PRIVATE KEY" also matches "EC PRIVATE KEY").
func hasPEM(b []byte, kind string) bool {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return false
		}
		if strings.HasSuffix(block.Type, kind) {
			return true
		}
	}
}
