package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/gate"
	"github.com/tokengate/tokengate/internal/memlimit"
)

// serve runs the gate on the configuration at path until ctx ends or a
// listener fails, then drains in-flight requests for the configured grace
// period. SIGHUP reloads the configuration, even an unchanged one, and
// refetches every JWKS.
func serve(ctx context.Context, path string, log *zap.Logger) error {
	// A soft memory limit from the container's cgroup limit (GOMEMLIMIT wins).
	if limit, err := memlimit.Apply(); err != nil {
		log.Warn("no memory limit derived from the container", zap.Error(err))
	} else if limit != math.MaxInt64 {
		log.Info("memory limit derived from the container", zap.Int64("bytes", limit))
	}
	g, err := gate.New(path, gate.Options{Logger: log, Version: version})
	if err != nil {
		return err
	}
	if err := g.Start(ctx); err != nil {
		return err
	}
	stopHUP := onSIGHUP(ctx, func(ctx context.Context) { _ = g.Refresh(ctx, "SIGHUP") })
	select {
	case err := <-g.Err():
		stopHUP()
		_ = g.Shutdown(context.Background())
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	stopHUP()
	return g.Shutdown(context.Background())
}

// onSIGHUP calls reload on every SIGHUP until the returned stop is
// called; reload's context ends with stop.
func onSIGHUP(ctx context.Context, reload func(context.Context)) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				reload(ctx)
			}
		}
	}()
	return func() { cancel(); signal.Stop(hup) }
}
