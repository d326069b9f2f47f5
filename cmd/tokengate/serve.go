package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/config"
)

// swappable is the public handler; a reload replaces what it points to
// without disturbing requests in flight.
type swappable struct{ h atomic.Pointer[http.Handler] }

func (s *swappable) ServeHTTP(w http.ResponseWriter, r *http.Request) { (*s.h.Load()).ServeHTTP(w, r) }

func (s *swappable) set(h http.Handler) { s.h.Store(&h) }

// serve runs until ctx ends, then drains in-flight requests for the
// configured grace period.
func serve(ctx context.Context, path string, log *zap.Logger) error {
	cfg, err := config.Load(path, config.Options{})
	if err != nil {
		return err
	}
	st, err := build(cfg, log)
	if err != nil {
		return err
	}
	st.warmUp(ctx, log)
	var pub swappable
	pub.set(st.handler)
	srv := &http.Server{
		Handler:           &pub,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    256 << 10,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	log.Info("tokengate listening", zap.String("addr", ln.Addr().String()), zap.String("upstream", cfg.Upstream.URL), zap.String("version", version))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	grace := cfg.ShutdownGrace.D()
	log.Info("shutting down: no new connections, draining requests in flight", zap.Duration("grace", grace))
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("requests still in flight after the %v grace period were cut off", grace)
		}
		return err
	}
	log.Info("stopped cleanly")
	return nil
}
