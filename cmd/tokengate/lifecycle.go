package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/egress"
	"github.com/tokengate/tokengate/internal/stack"
	"github.com/tokengate/tokengate/internal/telemetry"
	"github.com/tokengate/tokengate/listener"
	"github.com/tokengate/tokengate/proxy"
)

// server is a running tokengate: public and admin listeners, the current
// stack, and the reload machinery.
type server struct {
	path     string
	log      *zap.Logger
	b        *stack.Builder
	m        *telemetry.Metrics
	cur      atomic.Pointer[stack.Stack]
	draining atomic.Bool
	timeouts listener.Timeouts // of every listener

	reloadMu sync.Mutex
	lastSum  [32]byte

	pubLn, adminLn *listener.Listener
	eg             *egressSet
	stopWatch      func()
	errc           chan error

	shutdownOnce sync.Once
	shutdownErr  error
}

// serveOptions are what start takes besides the configuration file.
type serveOptions struct {
	// timeouts of every listener; zero fields take the listener package's
	// defaults, and Idle the configuration's idle_timeout.
	timeouts listener.Timeouts
}

// serve runs until ctx ends, then drains in-flight requests for the
// configured grace period.
func serve(ctx context.Context, path string, log *zap.Logger) error {
	s, err := start(ctx, path, log)
	if err != nil {
		return err
	}
	select {
	case err := <-s.errc:
		_ = s.shutdown()
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	return s.shutdown()
}

// start loads the configuration, builds it, opens both listeners and the
// config watcher, and serves in the background.
func start(ctx context.Context, path string, log *zap.Logger) (*server, error) {
	return startWith(ctx, path, log, serveOptions{})
}

func startWith(ctx context.Context, path string, log *zap.Logger, o serveOptions) (*server, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := config.Parse(data, filepath.Dir(path), config.Options{})
	if err != nil {
		return nil, err
	}
	s := &server{path: path, log: log, errc: make(chan error, 2), lastSum: sha256.Sum256(data), timeouts: o.timeouts}
	if s.timeouts.Idle <= 0 {
		s.timeouts.Idle = cfg.IdleTimeout.D()
	}
	s.m = telemetry.New(telemetry.Options{Version: version, CacheEntries: func() float64 {
		if st := s.cur.Load(); st != nil && st.Cache() != nil {
			return float64(st.Cache().Len())
		}
		return 0
	}, TokenExpiries: func(report func(string, float64)) {
		for _, src := range s.eg.sources() {
			report(src.Name(), src.SecondsLeft())
		}
	}})
	s.eg = newEgressSet(log, s.m, s.timeouts)
	s.b = stack.NewBuilder(stack.Options{Logger: log, Metrics: s.m})
	st, err := s.b.Build(cfg, nil)
	if err != nil {
		return nil, err
	}
	s.b.CommitReplay()
	s.cur.Store(st)
	s.m.ConfigLoaded()

	if cfg.Receiving() {
		pubTLS, err := tlsSetup(cfg.TLS, log)
		if err != nil {
			return nil, err
		}
		if s.pubLn, err = s.listen("http", cfg.Listen, st.Handler(), pubTLS); err != nil {
			return nil, err
		}
	}
	if s.adminLn, err = s.listen("admin", cfg.AdminListen, s.adminHandler(), nil); err != nil {
		s.closeListeners()
		return nil, fmt.Errorf("admin_listen: %w", err)
	}
	plan, err := s.eg.prepare(cfg.Egress, cfg.BodyReadTimeout.D())
	if err != nil {
		s.closeListeners()
		return nil, err
	}
	st.WarmUp(ctx, log)
	if s.pubLn != nil {
		s.pubLn.Start()
	}
	s.adminLn.Start()
	s.eg.commit(ctx, plan) // after the public listener: an egress may use this process's Token URL
	if err := s.watch(ctx); err != nil {
		log.Warn("config file watching is off; reload with SIGHUP", zap.Error(err))
	}
	if s.pubLn != nil {
		log.Info("tokengate listening", zap.String("addr", s.pubLn.Addr().String()), zap.String("admin", s.adminLn.Addr().String()),
			zap.Bool("tls", cfg.TLS != nil), zap.String("upstream", cfg.Upstream.URL), zap.Int("egress", len(cfg.Egress)), zap.String("version", version))
	} else {
		log.Info("tokengate running the calling side only (no upstream or routes configured)", zap.String("admin", s.adminLn.Addr().String()),
			zap.Int("egress", len(cfg.Egress)), zap.String("version", version))
	}
	return s, nil
}

// listen binds one of the gate's own listeners; if it stops serving, the
// process ends (serve returns the error).
func (s *server) listen(name, addr string, h http.Handler, t *listener.TLSSetup) (*listener.Listener, error) {
	return listener.New(listener.Options{Name: name, Addr: addr, Handler: h, TLS: t, Timeouts: s.timeouts,
		Logger: s.log.Named(name), OnError: s.serveErr})
}

func (s *server) closeListeners() {
	for _, l := range []*listener.Listener{s.pubLn, s.adminLn} {
		if l != nil {
			_ = l.Close()
		}
	}
}

func (s *server) serveErr(err error) {
	select {
	case s.errc <- err:
	default:
	}
}

// adminHandler serves /healthz, /readyz and /metrics on the admin port.
func (s *server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		var err error
		if s.draining.Load() {
			err = errors.New("shutting down")
		} else if err = s.cur.Load().Ready(); err == nil {
			err = s.eg.ready()
		}
		if err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", s.m.Handler())
	return mux
}

// errUnchanged: a file event that did not change the configuration.
var errUnchanged = errors.New("configuration unchanged")

// reload re-reads the configuration. A new configuration is fully
// validated and built before it replaces the old one; an invalid one
// leaves the old one serving and every problem is logged. SIGHUP reloads
// even an unchanged file, and refetches every JWKS.
func (s *server) reload(ctx context.Context, why string) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	old := s.cur.Load()
	st, sum, err := s.buildFromFile(old, why == "SIGHUP")
	if errors.Is(err, errUnchanged) {
		return nil
	}
	var plan *egressPlan
	var pubTLS *listener.TLSSetup
	tlsChanged := err == nil && s.pubLn != nil && !reflect.DeepEqual(st.Config().TLS, old.Config().TLS)
	if tlsChanged {
		pubTLS, err = tlsSetup(st.Config().TLS, s.log)
	}
	if err == nil {
		plan, err = s.eg.prepare(st.Config().Egress, st.Config().BodyReadTimeout.D())
	}
	if err != nil {
		s.b.AbortReplay()
		s.reloadFailed(why, err)
		return err
	}
	s.swap(ctx, old, st)
	s.b.CommitReplay()
	if tlsChanged {
		s.pubLn.SetTLS(pubTLS) // new connections; established ones keep theirs
		s.log.Info("public listener TLS settings replaced", zap.Bool("tls", pubTLS != nil))
	}
	s.eg.commit(ctx, plan)
	if why == "SIGHUP" {
		st.RefreshKeys(ctx, s.log)
	}
	s.lastSum = sum
	s.m.Reloaded(true)
	s.log.Info("configuration reloaded", zap.String("trigger", why), zap.Bool("cache_kept", st.Cache() == old.Cache()))
	return nil
}

// buildFromFile reads, validates and builds the configuration file.
func (s *server) buildFromFile(old *stack.Stack, force bool) (*stack.Stack, [32]byte, error) {
	data, err := os.ReadFile(s.path)
	if err != nil {
		return nil, [32]byte{}, err
	}
	sum := sha256.Sum256(data)
	if sum == s.lastSum && !force {
		return nil, sum, errUnchanged
	}
	cfg, err := config.Parse(data, filepath.Dir(s.path), config.Options{})
	if err != nil {
		return nil, sum, err
	}
	st, err := s.b.Build(cfg, old)
	return st, sum, err
}

func (s *server) reloadFailed(why string, err error) {
	s.m.Reloaded(false)
	var ce *config.Error
	if errors.As(err, &ce) {
		for _, e := range ce.Errs {
			s.log.Error("reload refused: configuration problem", zap.String("problem", e.Error()))
		}
	}
	s.log.Error("reload failed; still serving the previous configuration", zap.String("trigger", why), zap.Error(err))
}

func (s *server) swap(ctx context.Context, old, st *stack.Stack) {
	if st.Config().Listen != old.Config().Listen || st.Config().AdminListen != old.Config().AdminListen || st.Config().Receiving() && s.pubLn == nil {
		s.log.Warn("listen and admin_listen changes, and adding a receiving side to an egress-only configuration, take effect only after a restart")
	}
	old.Stop()
	st.WarmUp(ctx, s.log)
	s.cur.Store(st)
	if s.pubLn != nil {
		s.pubLn.SetHandler(st.Handler())
	}
	if old.Transport() != st.Transport() && old.Transport() != nil {
		old.Transport().CloseIdleConnections() // in-flight requests keep theirs
	}
}

// watch reloads on SIGHUP and on changes to the config file (its
// directory is watched: see watchFiles).
func (s *server) watch(ctx context.Context) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	wctx, cancel := context.WithCancel(ctx)
	s.stopWatch = func() { cancel(); signal.Stop(hup) }
	go func() {
		for {
			select {
			case <-wctx.Done():
				return
			case <-hup:
				_ = s.reload(wctx, "SIGHUP")
			}
		}
	}()
	isConfig := func(ev fsnotify.Event) bool { return relevant(ev, s.path) }
	return listener.WatchFiles(wctx, []string{filepath.Dir(s.path)}, isConfig, 0, func() { _ = s.reload(wctx, "file change") })
}

// relevant reports whether an event in the config's directory may have
// changed the config: the file itself, or a Kubernetes "..data" swap.
func relevant(ev fsnotify.Event, path string) bool {
	base := filepath.Base(ev.Name)
	return filepath.Clean(ev.Name) == filepath.Clean(path) || base == "..data" || strings.HasPrefix(base, "..") && ev.Has(fsnotify.Create)
}

// shutdown stops accepting connections at once, lets requests in flight
// finish within the grace period, then stops the admin listener.
func (s *server) shutdown() error {
	s.shutdownOnce.Do(func() { s.shutdownErr = s.stop() })
	return s.shutdownErr
}

func (s *server) stop() error {
	if s.stopWatch != nil {
		s.stopWatch()
	}
	s.cur.Load().Stop()
	s.draining.Store(true)
	grace := s.cur.Load().Config().ShutdownGrace.D()
	s.log.Info("shutting down: no new connections, draining requests in flight", zap.Duration("grace", grace))
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	egressDone := make(chan struct{})
	go func() { s.eg.shutdown(ctx); close(egressDone) }()
	var err error
	if s.pubLn != nil {
		err = s.pubLn.Shutdown(ctx) // what is still in flight at the deadline is cut off
	}
	<-egressDone
	_ = s.adminLn.Close()
	if t := s.cur.Load().Transport(); t != nil {
		t.CloseIdleConnections()
	}
	s.b.Close()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("requests still in flight after the %v grace period were cut off", grace)
		}
		return err
	}
	s.log.Info("stopped cleanly")
	return nil
}

// The metrics observe what these packages report.
var (
	_ proxy.Observer          = (*telemetry.Metrics)(nil)
	_ proxy.SignatureObserver = (*telemetry.Metrics)(nil)
	_ egress.Observer         = (*telemetry.Metrics)(nil)
)
