package queue

import (
	"fmt"
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
