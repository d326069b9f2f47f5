package stack

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// SharedHealthInterval is how often the redis: block's server is pinged
// in the background, for the status page.
const SharedHealthInterval = 3 * time.Second

// errSharedNotChecked: the first ping has not answered yet.
var errSharedNotChecked = errors.New("shared Redis not reached yet")

// SharedRedisStatus is the redis: block's server as the status page shows
// it. Never its URL (which may hold a password).
type SharedRedisStatus struct {
	// Configured: the configuration has a redis: block.
	Configured bool
	// Health is the last background PING's result (AUTH included: a
	// wrong password fails it); nil without a block. It never waits on
	// Redis.
	Health func() error
}

// SharedRedis describes the redis: block's server the stack uses.
func (s *Stack) SharedRedis() SharedRedisStatus { return s.shared }

func sharedStatus(h *sharedRedis) SharedRedisStatus {
	if h == nil {
		return SharedRedisStatus{}
	}
	return SharedRedisStatus{Configured: true, Health: h.health.get}
}

// sharedHealth pings the redis: block's server every SharedHealthInterval
// (each ping bounded by redis.timeout) and keeps the last result. A
// failure is logged once, when Redis stops answering: what uses it falls
// back by design (rate limits count per replica, shared egress entries
// request their own tokens), so readiness does not depend on it, and the
// log and the status page are where a broken Redis shows.
type sharedHealth struct {
	mu   sync.Mutex
	err  error
	stop context.CancelFunc
	done chan struct{}
}

func watchShared(c *redis.Client, timeout time.Duration, log *zap.Logger) *sharedHealth {
	ctx, stop := context.WithCancel(context.Background())
	h := &sharedHealth{err: errSharedNotChecked, stop: stop, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		t := time.NewTimer(0)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			pctx, cancel := context.WithTimeout(ctx, timeout)
			err := c.Ping(pctx).Err()
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				err = fmt.Errorf("shared Redis does not answer: %w", err)
			}
			h.mu.Lock()
			was := h.err
			h.err = err
			h.mu.Unlock()
			switch {
			case err != nil && (was == nil || errors.Is(was, errSharedNotChecked)):
				log.Warn("shared Redis (redis:) unreachable: rate limits count in each replica's memory and shared egress entries request their own tokens until it answers; readiness is not affected", zap.Error(err))
			case err == nil && was != nil && !errors.Is(was, errSharedNotChecked):
				log.Info("shared Redis (redis:) reachable again")
			}
			t.Reset(SharedHealthInterval)
		}
	}()
	return h
}

// get is the last ping's result.
func (h *sharedHealth) get() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// close stops the pings and waits for the last one (cancelled: at once).
func (h *sharedHealth) close() {
	h.stop()
	<-h.done
}
