package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/tokengate/tokengate/config"
)

// NewTransport returns the upstream transport: http.DefaultTransport's
// settings with the configured timeouts and an idle pool sized for bursts
// of webhooks (Go's default of 2 idle connections per host makes a busy
// proxy open a new connection for most requests).
//
// For https receivers it verifies against CAFile (else the system roots),
// presents CertFile/KeyFile for mTLS, and checks ServerName when set.
func NewTransport(u config.Upstream) (*http.Transport, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil // the receiver is reached directly, never via HTTP_PROXY
	t.DialContext = (&net.Dialer{Timeout: u.DialTimeout.D(), KeepAlive: 30 * time.Second}).DialContext
	t.ResponseHeaderTimeout = u.ResponseTimeout.D()
	t.MaxIdleConns = u.MaxIdleConns
	t.MaxIdleConnsPerHost = u.MaxIdleConns
	t.IdleConnTimeout = 90 * time.Second
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.ServerName}
	if u.CAFile != "" {
		pool, err := LoadCertPool(u.CAFile)
		if err != nil {
			return nil, fmt.Errorf("upstream.ca_file: %w", err)
		}
		tc.RootCAs = pool
	}
	if u.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(u.CertFile, u.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("upstream.cert_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	tc.InsecureSkipVerify = u.InsecureSkipTLSVerify
	t.TLSClientConfig = tc
	return t, nil
}

// LoadCertPool reads PEM CA certificates from a file.
func LoadCertPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no PEM certificate in %s", path)
	}
	return pool, nil
}

// bufferPool reuses ReverseProxy's 32 KiB copy buffers.
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
}

func (b *bufferPool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b *bufferPool) Put(x []byte) { b.p.Put(&x) }
