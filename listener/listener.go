package listener

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// Defaults for zero Options fields.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultWriteStall        = 60 * time.Second
	DefaultMaxHeaderBytes    = 256 << 10
	// MaxConcurrentStreams is the HTTP/2 streams one connection may have
	// open at once.
	MaxConcurrentStreams = 100
)

// Timeouts bound what one client can hold; zero fields take the defaults.
type Timeouts struct {
	// ReadHeader bounds reading a request head, and the TLS handshake of
	// a new connection. Default 10s.
	ReadHeader time.Duration
	// Idle closes a keep-alive connection that sends no new request for
	// this long. Default 120s.
	Idle time.Duration
	// WriteStall ends a connection (an HTTP/2 stream) whose write makes
	// no progress for this long: a client that does not read its answer.
	// A write of 32 KiB must finish within it, so the slowest reader kept
	// takes about 32 KiB/WriteStall. Default 60s.
	WriteStall time.Duration
}

func (t Timeouts) withDefaults() Timeouts {
	if t.ReadHeader <= 0 {
		t.ReadHeader = DefaultReadHeaderTimeout
	}
	if t.Idle <= 0 {
		t.Idle = DefaultIdleTimeout
	}
	if t.WriteStall <= 0 {
		t.WriteStall = DefaultWriteStall
	}
	return t
}

// Options configure a Listener.
type Options struct {
	// Name appears in logs ("public", "admin", "egress vendor").
	Name string
	// Addr is the TCP address to bind ("127.0.0.1:0" picks a port).
	Addr string
	// Listener, when set, is served instead of binding Addr (a Unix
	// socket); Shutdown and Close close it.
	Listener net.Listener
	// Handler serves the requests; SetHandler replaces it. Nil: 404.
	Handler http.Handler
	// TLS, when set, serves HTTPS (HTTP/2 and HTTP/1.1 by ALPN);
	// SetTLS replaces it.
	TLS *TLSSetup
	// Timeouts bound connections; zero fields take the defaults.
	Timeouts Timeouts
	// MaxHeaderBytes bounds a request head. Default 256 KiB.
	MaxHeaderBytes int
	// Logger receives the server's errors and certificate reloads.
	Logger *zap.Logger
	// OnError is called if serving stops with an error (not on
	// Shutdown or Close). Default: logged.
	OnError func(error)
}

// Listener is one bound address serving HTTP or HTTPS. Its handler and
// TLS settings can be replaced while it serves; its address cannot.
type Listener struct {
	name    string
	log     *zap.Logger
	ln      net.Listener
	srv     *http.Server
	stall   time.Duration
	onError func(error)
	handler atomic.Pointer[http.Handler]
	tls     atomic.Pointer[TLSSetup]

	mu        sync.Mutex
	started   bool
	closed    bool
	stopWatch context.CancelFunc // the serving certificate's watcher
}

// New binds o.Addr; Start serves it.
func New(o Options) (*Listener, error) {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	t := o.Timeouts.withDefaults()
	ln, err := o.Listener, error(nil)
	if ln == nil {
		ln, err = net.Listen("tcp", o.Addr)
	}
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			by := "another program"
			if who := portOwner(o.Addr); who != "" {
				by = who
			}
			return nil, fmt.Errorf("listen %s: the port is taken by %s (stop it, or choose another address): %w", o.Addr, by, err)
		}
		return nil, fmt.Errorf("listen %s: %w", o.Addr, err)
	}
	l := &Listener{name: o.Name, log: o.Logger, ln: ln, stall: t.WriteStall, onError: o.OnError}
	l.SetHandler(o.Handler)
	l.tls.Store(o.TLS)
	// The one http.Server of tokengate. No WriteTimeout: see WriteStall.
	l.srv = &http.Server{
		Handler:           http.HandlerFunc(l.serveHTTP),
		ReadHeaderTimeout: t.ReadHeader,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    o.MaxHeaderBytes,
		ErrorLog:          zap.NewStdLog(o.Logger),
		// Each HTTP/2 stream may hold an upstream connection: fewer streams
		// per connection than Go's default 250 bound what one client that
		// never reads its answers can hold.
		HTTP2: &http.HTTP2Config{MaxConcurrentStreams: MaxConcurrentStreams},
	}
	return l, nil
}

// Addr is the bound address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// SetHandler makes h serve the next requests; requests in flight finish
// with the handler they started with.
func (l *Listener) SetHandler(h http.Handler) {
	if h == nil {
		h = http.NotFoundHandler()
	}
	l.handler.Store(&h)
}

// SetTLS makes t (nil: plain HTTP) serve the next connections;
// established connections keep theirs. A started Listener watches t's
// certificate files and stops watching the previous ones.
func (l *Listener) SetTLS(t *TLSSetup) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tls.Store(t)
	if l.started && !l.closed {
		l.watchLocked(t)
	}
}

// TLS is the TLS setup new connections get, nil for plain HTTP.
func (l *Listener) TLS() *TLSSetup { return l.tls.Load() }

func (l *Listener) watchLocked(t *TLSSetup) {
	if l.stopWatch != nil {
		l.stopWatch()
		l.stopWatch = nil
	}
	if t != nil {
		var ctx context.Context
		ctx, l.stopWatch = context.WithCancel(context.Background())
		t.certs.Watch(ctx)
	}
}

// Start serves in the background until Shutdown or Close.
func (l *Listener) Start() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started || l.closed {
		return
	}
	l.started = true
	l.watchLocked(l.tls.Load())
	go func() {
		err := l.srv.Serve(acceptor{l.ln, l})
		if err == nil || errors.Is(err, http.ErrServerClosed) {
			return
		}
		if l.onError != nil {
			l.onError(err)
			return
		}
		l.log.Error("listener stopped", zap.String("listener", l.name), zap.Error(err))
	}()
}

// Shutdown stops accepting at once and waits for requests in flight until
// ctx ends; then it closes what is left.
func (l *Listener) Shutdown(ctx context.Context) error {
	if !l.stop() {
		return l.ln.Close()
	}
	err := l.srv.Shutdown(ctx)
	if err != nil {
		_ = l.srv.Close()
	}
	return err
}

// Close closes the listener and every connection at once.
func (l *Listener) Close() error {
	if !l.stop() {
		return l.ln.Close()
	}
	return l.srv.Close()
}

// stop ends certificate watching and reports whether Start ran.
func (l *Listener) stop() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.stopWatch != nil {
		l.stopWatch()
		l.stopWatch = nil
	}
	return l.started
}

// serveHTTP runs the current handler; an HTTP/2 stream's writes are timed
// by WriteStall (stallWriter), HTTP/1.x connections by stallConn.
func (l *Listener) serveHTTP(w http.ResponseWriter, r *http.Request) {
	h := *l.handler.Load()
	if r.ProtoMajor != 2 {
		h.ServeHTTP(w, r)
		return
	}
	sw := &stallWriter{ResponseWriter: w, rc: http.NewResponseController(w), stall: l.stall}
	h.ServeHTTP(sw, r)
	sw.finish()
}

// acceptor wraps each accepted connection: writes timed by WriteStall,
// then TLS when the listener serves it.
type acceptor struct {
	net.Listener
	l *Listener
}

func (a acceptor) Accept() (net.Conn, error) {
	c, err := a.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c = &stallConn{Conn: c, stall: a.l.stall}
	if t := a.l.tls.Load(); t != nil {
		return tls.Server(c, t.config), nil
	}
	return c, nil
}
