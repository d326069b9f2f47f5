package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/config"
)

// reloadDebounce merges the burst of file events one config change makes
// (an editor's write and rename, a ConfigMap's symlink swap).
const reloadDebounce = 150 * time.Millisecond

// swappable is the public handler; a reload replaces what it points to
// without disturbing requests in flight.
type swappable struct{ h atomic.Pointer[http.Handler] }

func (s *swappable) ServeHTTP(w http.ResponseWriter, r *http.Request) { (*s.h.Load()).ServeHTTP(w, r) }

func (s *swappable) set(h http.Handler) { s.h.Store(&h) }

// server is a running tokengate: public and admin listeners, the current
// stack, and the reload machinery.
type server struct {
	path     string
	log      *zap.Logger
	b        *builder
	m        *metrics
	cur      atomic.Pointer[stack]
	pub      swappable
	draining atomic.Bool

	reloadMu sync.Mutex
	lastSum  [32]byte

	pubSrv, adminSrv *http.Server
	pubLn, adminLn   net.Listener
	certs            *certReloader
	stopWatch        func()
	errc             chan error
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
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := config.Parse(data, filepath.Dir(path), config.Options{})
	if err != nil {
		return nil, err
	}
	s := &server{path: path, log: log, errc: make(chan error, 2), lastSum: sha256.Sum256(data)}
	s.m = newMetrics(version, func() float64 {
		if st := s.cur.Load(); st != nil {
			return float64(st.cache.Len())
		}
		return 0
	})
	s.b = &builder{log: log, metrics: s.m}
	st, err := s.b.build(cfg, nil)
	if err != nil {
		return nil, err
	}
	s.cur.Store(st)
	s.pub.set(st.handler)
	s.m.lastReload.SetToCurrentTime()

	if s.pubLn, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	if s.adminLn, err = net.Listen("tcp", cfg.AdminListen); err != nil {
		s.pubLn.Close()
		return nil, fmt.Errorf("admin_listen %s: %w", cfg.AdminListen, err)
	}
	st.warmUp(ctx, log)
	s.pubSrv = &http.Server{
		Handler:           &s.pub,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       cfg.IdleTimeout.D(),
		MaxHeaderBytes:    256 << 10,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	s.adminSrv = &http.Server{Handler: s.adminHandler(), ReadHeaderTimeout: 5 * time.Second, ErrorLog: zap.NewStdLog(log.Named("admin"))}
	if t := cfg.TLS; t != nil {
		if s.certs, err = newCertReloader(t.CertFile, t.KeyFile, log.Named("tls")); err != nil {
			s.closeListeners()
			return nil, err
		}
		if s.pubSrv.TLSConfig, err = serverTLS(t, s.certs); err != nil {
			s.closeListeners()
			return nil, err
		}
		s.certs.watch(ctx)
		go func() { s.serveErr(s.pubSrv.ServeTLS(s.pubLn, "", "")) }()
	} else {
		go func() { s.serveErr(s.pubSrv.Serve(s.pubLn)) }()
	}
	go func() { s.serveErr(s.adminSrv.Serve(s.adminLn)) }()
	if err := s.watch(ctx); err != nil {
		log.Warn("config file watching is off; reload with SIGHUP", zap.Error(err))
	}
	log.Info("tokengate listening", zap.String("addr", s.pubLn.Addr().String()), zap.String("admin", s.adminLn.Addr().String()),
		zap.Bool("tls", cfg.TLS != nil), zap.String("upstream", cfg.Upstream.URL), zap.String("version", version))
	return s, nil
}

func (s *server) closeListeners() {
	s.pubLn.Close()
	s.adminLn.Close()
}

func (s *server) serveErr(err error) {
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.errc <- err
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
		} else {
			err = s.cur.Load().ready()
		}
		if err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.m.reg, promhttp.HandlerOpts{}))
	return mux
}

// reload re-reads the configuration. A new configuration is fully
// validated and built before it replaces the old one; an invalid one
// leaves the old one serving and every problem is logged.
func (s *server) reload(ctx context.Context, why string) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	data, err := os.ReadFile(s.path)
	if err == nil && sha256.Sum256(data) == s.lastSum && why != "SIGHUP" {
		return nil // an event that did not change the content
	}
	if err == nil {
		var cfg *config.Config
		if cfg, err = config.Parse(data, filepath.Dir(s.path), config.Options{}); err == nil {
			old := s.cur.Load()
			var st *stack
			if st, err = s.b.build(cfg, old); err == nil {
				s.swap(ctx, old, st)
				if why == "SIGHUP" {
					st.refreshKeys(ctx, s.log)
				}
				s.lastSum = sha256.Sum256(data)
				s.m.reloads.WithLabelValues("success").Inc()
				s.m.lastReload.SetToCurrentTime()
				s.log.Info("configuration reloaded", zap.String("trigger", why), zap.Bool("cache_kept", st.cache == old.cache))
				return nil
			}
		}
	}
	s.m.reloads.WithLabelValues("failure").Inc()
	var ce *config.Error
	if errors.As(err, &ce) {
		for _, e := range ce.Errs {
			s.log.Error("reload refused: configuration problem", zap.String("problem", e.Error()))
		}
	}
	s.log.Error("reload failed; still serving the previous configuration", zap.String("trigger", why), zap.Error(err))
	return err
}

func (s *server) swap(ctx context.Context, old, st *stack) {
	if st.cfg.Listen != old.cfg.Listen || st.cfg.AdminListen != old.cfg.AdminListen || !reflect.DeepEqual(st.cfg.TLS, old.cfg.TLS) {
		s.log.Warn("listen, admin_listen and tls changes take effect only after a restart (certificate files themselves are reloaded when they change)")
	}
	old.stop()
	st.warmUp(ctx, s.log)
	s.cur.Store(st)
	s.pub.set(st.handler)
	if old.transport != st.transport {
		old.transport.CloseIdleConnections() // in-flight requests keep theirs
	}
}

// watch reloads on SIGHUP and on changes to the config file. It watches the
// file's directory, not the file: editors replace files by rename, and
// Kubernetes updates a mounted ConfigMap by swapping the "..data" symlink.
func (s *server) watch(ctx context.Context) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	wctx, cancel := context.WithCancel(ctx)
	s.stopWatch = func() { cancel(); signal.Stop(hup) }
	w, err := fsnotify.NewWatcher()
	var events chan fsnotify.Event
	var errs chan error
	if err == nil {
		if err = w.Add(filepath.Dir(s.path)); err != nil {
			w.Close()
		} else {
			events, errs = w.Events, w.Errors
		}
	}
	go func() {
		if events != nil {
			defer w.Close()
		}
		var timer <-chan time.Time
		for {
			select {
			case <-wctx.Done():
				return
			case <-hup:
				_ = s.reload(wctx, "SIGHUP")
			case ev, ok := <-events:
				if !ok {
					events = nil
					continue
				}
				if relevant(ev, s.path) {
					timer = time.After(reloadDebounce)
				}
			case e, ok := <-errs:
				if !ok {
					errs = nil
					continue
				}
				s.log.Warn("config watcher", zap.Error(e))
			case <-timer:
				timer = nil
				_ = s.reload(wctx, "file change")
			}
		}
	}()
	return err
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
	if s.stopWatch != nil {
		s.stopWatch()
	}
	s.cur.Load().stop()
	s.draining.Store(true)
	grace := s.cur.Load().cfg.ShutdownGrace.D()
	s.log.Info("shutting down: no new connections, draining requests in flight", zap.Duration("grace", grace))
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := s.pubSrv.Shutdown(ctx)
	_ = s.adminSrv.Close()
	s.cur.Load().transport.CloseIdleConnections()
	if err != nil {
		_ = s.pubSrv.Close()
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("requests still in flight after the %v grace period were cut off", grace)
		}
		return err
	}
	s.log.Info("stopped cleanly")
	return nil
}
