package gate

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/egress"
	"github.com/tokengate/tokengate/internal/stack"
	"github.com/tokengate/tokengate/internal/status"
	"github.com/tokengate/tokengate/internal/telemetry"
	"github.com/tokengate/tokengate/listener"
	"github.com/tokengate/tokengate/proxy"
)

// Options are what New takes besides the configuration file.
type Options struct {
	// Logger receives the gate's log, the access log included. nil: no
	// logging.
	Logger *zap.Logger
	// Version is the build's version, in the start log and
	// tokengate_build_info. "": "dev".
	Version string
	// Timeouts of every listener; zero fields take the listener package's
	// defaults, and Idle the configuration's idle_timeout.
	Timeouts listener.Timeouts
	// QueueCheckEvery is how often the queue store's health is checked
	// for /readyz. Default DefaultQueueCheckEvery.
	QueueCheckEvery time.Duration
	// Getenv reads the OTEL_* variables that turn tracing on and set it
	// up (tracing.go); default os.Getenv.
	Getenv func(string) string
}

// Gate is a running tokengate: public and admin listeners, the current
// stack, the egress set, and the reload machinery.
type Gate struct {
	path     string
	log      *zap.Logger
	version  string
	b        *stack.Builder
	m        *telemetry.Metrics
	tr       *telemetry.Tracing // nil: tracing off
	cur      atomic.Pointer[stack.Stack]
	draining atomic.Bool
	timeouts listener.Timeouts // of every listener

	reloadMu sync.Mutex
	lastSum  [32]byte

	started  time.Time                     // when New ran (the status page's uptime)
	statusC  *status.Cache                 // the status page's builds (admin.go)
	traffic  *status.Traffic               // recent requests by route (status page)
	lastLoad atomic.Pointer[status.Reload] // the last configuration load (status page)

	pubLn, adminLn *listener.Listener
	eg             *egressSet
	queue          atomic.Pointer[queueRunner] // nil until a configuration queues a route
	queueMu        sync.Mutex                  // orders opening a queue on reload with Shutdown
	queueEvery     time.Duration
	stopWatch      func()
	errc           chan error

	shutdownOnce sync.Once
	shutdownErr  error
}

// The metrics observe what these packages report.
var (
	_ proxy.Observer          = (*telemetry.Metrics)(nil)
	_ proxy.SignatureObserver = (*telemetry.Metrics)(nil)
	_ egress.Observer         = (*telemetry.Metrics)(nil)
)

// New loads the configuration at path and builds it: verifiers, Token
// URL, replay store, handler. Nothing listens or runs in the background
// until Start. An invalid configuration is an error naming every problem
// (a *config.Error).
func New(path string, o Options) (*Gate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := config.Parse(data, filepath.Dir(path), config.Options{})
	if err != nil {
		return nil, err
	}
	g := &Gate{path: path, log: o.Logger, version: o.Version, errc: make(chan error, 2), lastSum: sha256.Sum256(data), timeouts: o.Timeouts,
		started: time.Now(), traffic: status.NewTraffic(nil)}
	g.lastLoad.Store(&status.Reload{At: g.started.UTC(), Result: status.ReloadStart})
	g.statusC = status.NewCache(g, status.CacheOptions{})
	if g.log == nil {
		g.log = zap.NewNop()
	}
	if g.version == "" {
		g.version = "dev"
	}
	if g.timeouts.Idle <= 0 {
		g.timeouts.Idle = cfg.IdleTimeout.D()
	}
	g.m = telemetry.New(telemetry.Options{Version: g.version, Recent: g.traffic, CacheEntries: func() float64 {
		if st := g.cur.Load(); st != nil && st.Cache() != nil {
			return float64(st.Cache().Len())
		}
		return 0
	}, TokenExpiries: func(report func(string, float64)) {
		for _, src := range g.eg.sources() {
			report(src.Name(), src.SecondsLeft())
		}
	}})
	if g.tr, err = newTracing(cfg, o, g.log, g.version); err != nil {
		return nil, err
	}
	g.eg = newEgressSet(g.log, g.m, g.tr, g.timeouts)
	g.queueEvery = o.QueueCheckEvery
	q, err := openQueue(cfg, upstreamTransport{g}, g.m, g.tr, g.log, g.queueEvery)
	if err != nil {
		g.stopTracing(time.Now()) // nothing served: nothing to wait for
		return nil, err
	}
	g.queue.Store(q)
	g.b = stack.NewBuilder(stack.Options{Logger: g.log, Metrics: g.m, Queue: queueRef{g}, Tracing: g.tr})
	st, err := g.b.Build(cfg, nil)
	if err != nil {
		if q != nil {
			q.stop()
		}
		g.stopTracing(time.Now()) // nothing served: nothing to wait for
		return nil, err
	}
	g.b.CommitReplay()
	g.cur.Store(st)
	g.m.ConfigLoaded()
	return g, nil
}

// Start opens the listeners, starts the egress entries and the issuers'
// key fetching, serves in the background, and watches the configuration
// file (a change reloads). ctx bounds the background work of the stack it
// starts; Shutdown ends it all.
func (g *Gate) Start(ctx context.Context) (err error) {
	if q := g.queue.Load(); q != nil {
		defer func() {
			if err != nil {
				q.stop() // releases the store's lock
			}
		}()
	}
	st := g.cur.Load()
	cfg := st.Config()
	if cfg.Receiving() {
		pubTLS, err := tlsSetup(cfg.TLS, g.log)
		if err != nil {
			return err
		}
		if g.pubLn, err = g.listen("http", cfg.Listen, st.Handler(), pubTLS); err != nil {
			return err
		}
	}
	if g.adminLn, err = g.listen("admin", cfg.AdminListen, g.adminHandler(cfg.AdminListen), nil); err != nil {
		g.closeListeners()
		return fmt.Errorf("admin_listen: %w", err)
	}
	plan, err := g.eg.prepare(cfg)
	if err != nil {
		g.closeListeners()
		return err
	}
	st.WarmUp(ctx, g.log)
	if q := g.queue.Load(); q != nil {
		q.start(ctx, g.timeouts) // before the public listener: what is stored from an earlier run goes first
	}
	if g.pubLn != nil {
		g.pubLn.Start()
	}
	g.adminLn.Start()
	g.eg.commit(ctx, plan) // after the public listener: an egress may use this process's Token URL
	if err := g.watch(ctx); err != nil {
		g.log.Warn("config file watching is off; reload with SIGHUP", zap.Error(err))
	}
	if g.pubLn != nil {
		g.log.Info("tokengate listening", zap.String("addr", g.pubLn.Addr().String()), zap.String("admin", g.adminLn.Addr().String()),
			zap.Bool("tls", cfg.TLS != nil), zap.String("upstream", cfg.Upstream.URL), zap.Int("egress", len(cfg.Egress)), zap.String("version", g.version))
	} else {
		g.log.Info("tokengate running the calling side only (no upstream or routes configured)", zap.String("admin", g.adminLn.Addr().String()),
			zap.Int("egress", len(cfg.Egress)), zap.String("version", g.version))
	}
	return nil
}

// Err receives the error of a listener that stopped serving: the process
// should end (Shutdown, then exit).
func (g *Gate) Err() <-chan error { return g.errc }

// Addr is the public listener's address, "" without a receiving side.
func (g *Gate) Addr() string {
	if g.pubLn == nil {
		return ""
	}
	return g.pubLn.Addr().String()
}

// AdminAddr is the admin listener's address.
func (g *Gate) AdminAddr() string { return g.adminLn.Addr().String() }

// EgressAddrs are the egress listeners' addresses, by entry name.
func (g *Gate) EgressAddrs() map[string]string { return g.eg.addrs() }

// listen binds one of the gate's own listeners; if it stops serving, the
// process ends (Err receives the error).
func (g *Gate) listen(name, addr string, h http.Handler, t *listener.TLSSetup) (*listener.Listener, error) {
	return listener.New(listener.Options{Name: name, Addr: addr, Handler: h, TLS: t, Timeouts: g.timeouts,
		Logger: g.log.Named(name), OnError: g.serveErr})
}

func (g *Gate) closeListeners() {
	for _, l := range []*listener.Listener{g.pubLn, g.adminLn} {
		if l != nil {
			_ = l.Close()
		}
	}
}

func (g *Gate) serveErr(err error) {
	select {
	case g.errc <- err:
	default:
	}
}
