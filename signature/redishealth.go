package signature

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
)

// HealthInterval is how often a Redis replay store pings its server in
// the background, for Health.
const HealthInterval = 3 * time.Second

// errNotChecked: the first ping has not answered yet.
var errNotChecked = errors.New("replay store: Redis not reached yet")

// health pings the store's server every HealthInterval (each ping bounded
// by the store's command timeout) and keeps the last result, so that
// readiness reads it without waiting on Redis.
type health struct {
	mu   sync.Mutex
	err  error
	stop context.CancelFunc
	done chan struct{}
}

// watch starts the background pings.
func (h *health) watch(ping func(context.Context) error, timeout time.Duration, log *zap.Logger) {
	h.err = errNotChecked
	ctx, stop := context.WithCancel(context.Background())
	h.stop, h.done = stop, make(chan struct{})
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
			err := ping(pctx)
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				err = fmt.Errorf("replay store: Redis does not answer: %w", err)
			}
			h.mu.Lock()
			was := h.err
			h.err = err
			h.mu.Unlock()
			switch {
			case err != nil && (was == nil || errors.Is(was, errNotChecked)):
				log.Warn("replay store unreachable: signed requests on replay routes get 503 and /readyz fails until it answers", zap.Error(err))
			case err == nil && was != nil && !errors.Is(was, errNotChecked):
				log.Info("replay store reachable again")
			}
			t.Reset(HealthInterval)
		}
	}()
}

// get is the last ping's result.
func (h *health) get() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

func (h *health) close() {
	if h.stop != nil {
		h.stop()
		<-h.done
	}
}
