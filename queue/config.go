package queue

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"time"

	"github.com/tokengate/tokengate/config"
)

// RoutesFromConfig returns the delivery settings of cfg's queued routes.
func RoutesFromConfig(cfg *config.Config) []RouteOptions {
	var out []RouteOptions
	for _, r := range cfg.Routes {
		if !r.Queued() {
			continue
		}
		d := r.Delivery
		out = append(out, RouteOptions{
			Name: r.Name, Success: Codes(d.Success), RetryOn: Codes(d.RetryOn),
			MaxAttempts: d.MaxAttempts, MaxAge: d.MaxAge.D(),
			BackoffInitial: d.Backoff.Initial.D(), BackoffMax: d.Backoff.Max.D(),
			Concurrency: d.Concurrency, Timeout: d.Timeout.D(),
		})
	}
	return out
}

// leaseMargin is added to the longest attempt timeout for a Redis lease.
const leaseMargin = time.Minute

// OpenFromConfig opens the store cfg.Queue names: the embedded file store
// (held by this process alone) or Redis.
func OpenFromConfig(cfg *config.Config) (Store, error) {
	if dir, ok := cfg.Queue.FileDir(); ok {
		return OpenFile(FileOptions{Dir: dir, MaxBytes: int64(cfg.Queue.MaxBytes)})
	}
	longest := time.Duration(0)
	for _, ro := range RoutesFromConfig(cfg) {
		longest = max(longest, ro.Timeout)
	}
	s, err := OpenRedis(cfg.Queue.Store, RedisOptions{MaxBytes: int64(cfg.Queue.MaxBytes), Lease: longest + leaseMargin})
	if err != nil {
		return nil, fmt.Errorf("queue.store: %w", err)
	}
	return s, nil
}

// Connect gives an operator tool the queue cfg names, and what to close
// after. The file store is locked by a running gate: then the gate's
// control socket answers (ControlClient); with no gate running the file
// is opened itself (a gate starting meanwhile waits for its lock, then
// fails). A Redis store is shared: it is opened directly.
func Connect(ctx context.Context, cfg *config.Config) (Operator, io.Closer, error) {
	var store Store
	if dir, ok := cfg.Queue.FileDir(); ok {
		c := DialControl(dir)
		if _, err := c.Stats(ctx); err == nil {
			return c, c, nil
		}
		c.Close()
		s, err := OpenFile(FileOptions{Dir: dir, MaxBytes: int64(cfg.Queue.MaxBytes)})
		if err != nil {
			return nil, nil, fmt.Errorf("%w (and no gate answers on %s)", err, filepath.Join(dir, ControlSocket))
		}
		store = s
	} else {
		s, err := OpenFromConfig(cfg)
		if err != nil {
			return nil, nil, err
		}
		store = s
	}
	target, err := url.Parse(cfg.Upstream.URL)
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	q, err := New(store, Options{Routes: RoutesFromConfig(cfg), Target: target})
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	return q, store, nil
}
