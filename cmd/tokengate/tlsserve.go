package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/proxy"
)

// certPollInterval is the fallback when file events are missed (some
// network file systems send none).
const certPollInterval = 30 * time.Second

// certReloader serves the public certificate and re-reads it when its files
// change (cert-manager and Kubernetes Secret updates swap files in place).
// A new pair that does not load keeps the old one serving.
type certReloader struct {
	certFile, keyFile string
	log               *zap.Logger
	cur               atomic.Pointer[tls.Certificate]
	mu                sync.Mutex
	sum               [32]byte
	// onSwap, if set, is called after a new certificate took over.
	onSwap func()
}

func newCertReloader(certFile, keyFile string, log *zap.Logger) (*certReloader, error) {
	c := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	if _, err := c.reload(); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return c, nil
}

// GetCertificate is tls.Config.GetCertificate: each new handshake gets the
// current certificate; established connections keep theirs.
func (c *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.cur.Load(), nil
}

// loadPair reads and checks a certificate and key: they must parse, match,
// and the certificate must be valid now.
func loadPair(certFile, keyFile string, now time.Time) (*tls.Certificate, [32]byte, error) {
	var sum [32]byte
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, sum, err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, sum, err
	}
	sum = sha256.Sum256(append(append([]byte{}, certPEM...), keyPEM...))
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

// reload loads the files if they changed; it reports whether the serving
// certificate was replaced.
func (c *certReloader) reload() (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pair, sum, err := loadPair(c.certFile, c.keyFile, time.Now())
	if sum == c.sum && c.cur.Load() != nil {
		return false, nil // unchanged (or changed back to what is serving)
	}
	if err != nil {
		c.sum = sum // do not log the same broken pair on every event
		return false, err
	}
	c.sum = sum
	c.cur.Store(pair)
	if c.onSwap != nil {
		c.onSwap()
	}
	return true, nil
}

// watch re-reads the pair on file events in their directories and every
// certPollInterval, until ctx ends.
func (c *certReloader) watch(ctx context.Context) {
	dirs := []string{filepath.Dir(c.certFile)}
	if d := filepath.Dir(c.keyFile); d != dirs[0] {
		dirs = append(dirs, d)
	}
	all := func(fsnotify.Event) bool { return true }
	if err := watchFiles(ctx, dirs, all, certPollInterval, c.reloadAndLog); err != nil {
		c.log.Warn("certificate directory not watched; polling only", zap.Strings("dirs", dirs), zap.Error(err))
	}
}

func (c *certReloader) reloadAndLog() {
	changed, err := c.reload()
	switch {
	case err != nil:
		c.log.Error("new TLS certificate refused; still serving the previous one", zap.String("cert_file", c.certFile), zap.Error(err))
	case changed:
		leaf := c.cur.Load().Leaf
		c.log.Info("TLS certificate reloaded", zap.String("subject", leaf.Subject.String()), zap.Time("not_after", leaf.NotAfter))
	}
}

// serverTLS builds the public listener's TLS configuration: TLS 1.2 at
// least (1.3 preferred by Go), Go's default cipher suites, HTTP/2 and
// HTTP/1.1 by ALPN, and optional client-certificate verification.
func serverTLS(t *config.TLS, certs *certReloader) (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: certs.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}
	if t.ClientCAFile != "" {
		pool, err := proxy.LoadCertPool(t.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.client_ca_file: %w", err)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
		if t.ClientAuth == config.ClientAuthRequest {
			tc.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	return tc, nil
}
