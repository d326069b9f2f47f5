package signature

import (
	"context"
	"sync"
	"time"
)

// maxPendingReleases bounds the releases retried in the background at
// once; past it, a claim is left to end with its lease.
const maxPendingReleases = 256

// Backoff of a release retried in the background.
const (
	releaseRetryFirst = 100 * time.Millisecond
	releaseRetryMax   = 2 * time.Second
)

// releaser retries, in the background, releases that failed (the store
// was unreachable or slow): once the store answers again, a message whose
// claim had an unknown outcome, or that was not delivered, is let go at
// once instead of at the end of its lease. Each retry runs in its own
// goroutine, started only on a failure and ended by success, by the
// claim's lease or by close.
type releaser struct {
	release func(context.Context, Ticket) error
	now     func() time.Time
	mu      sync.Mutex
	pending map[string]bool // by key and owner
	done    chan struct{}
	closed  bool
	wg      sync.WaitGroup
}

func newReleaser(release func(context.Context, Ticket) error, now func() time.Time) *releaser {
	return &releaser{release: release, now: now, pending: map[string]bool{}, done: make(chan struct{})}
}

// retry schedules t's release, unless it is already scheduled, the lease
// is over, too many are pending or the releaser is closed.
func (r *releaser) retry(t Ticket) {
	id := t.Key + "\x00" + t.Owner
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.pending[id] || len(r.pending) >= maxPendingReleases || !r.now().Before(t.Until) {
		return
	}
	r.pending[id] = true
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer func() { r.mu.Lock(); delete(r.pending, id); r.mu.Unlock() }()
		wait := releaseRetryFirst
		for r.now().Before(t.Until) {
			select {
			case <-time.After(wait):
			case <-r.done:
				return
			}
			if r.release(context.Background(), t) == nil {
				return
			}
			wait = min(2*wait, releaseRetryMax)
		}
	}()
}

// Pending is the number of releases being retried.
func (r *releaser) Pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}

// close stops every retry and waits for them.
func (r *releaser) close() {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.done)
	}
	r.mu.Unlock()
	r.wg.Wait()
}
