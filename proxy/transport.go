package proxy

import (
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/tokengate/tokengate/config"
)

// NewTransport returns the upstream transport: http.DefaultTransport's
// settings with the configured timeouts and an idle pool sized for bursts
// of webhooks (Go's default of 2 idle connections per host makes a busy
// proxy open a new connection for most requests).
func NewTransport(u config.Upstream) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil // the receiver is reached directly, never via HTTP_PROXY
	t.DialContext = (&net.Dialer{Timeout: u.DialTimeout.D(), KeepAlive: 30 * time.Second}).DialContext
	t.ResponseHeaderTimeout = u.ResponseTimeout.D()
	t.MaxIdleConns = u.MaxIdleConns
	t.MaxIdleConnsPerHost = u.MaxIdleConns
	t.IdleConnTimeout = 90 * time.Second
	return t
}

// bufferPool reuses ReverseProxy's 32 KiB copy buffers.
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
}

func (b *bufferPool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b *bufferPool) Put(x []byte) { b.p.Put(&x) }
