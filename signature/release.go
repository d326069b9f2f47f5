package signature

import (
	"context"
	"sync"
	"time"
)

// Bounds of the store commands retried in the background at once; past
// them a release is left to end with its claim's lease, and a take is
// reported as lost.
const (
	maxPendingReleases = 256
	maxPendingTakes    = 4096
)

// Backoff of a command retried in the background: once the store answers
// again, a retried command lands within retryMax.
const (
	retryFirst = 100 * time.Millisecond
	retryMax   = time.Second
)

// retrier retries, in the background, one kind of store command that
// failed (the store was unreachable or slow): a release, so that a
// message whose claim had an unknown outcome, or that was not delivered,
// is let go at once instead of at the end of its lease; a take, so that a
// delivered message is recorded as soon as the store answers. Each retry
// runs in its own goroutine, started only on a failure and ended by
// success, by its deadline or by close.
type retrier struct {
	max     int
	now     func() time.Time
	landed  func(attempts int) // optional: a retry succeeded
	gaveUp  func(err error)    // optional: its deadline passed
	mu      sync.Mutex
	pending map[string]bool // by key, or key and owner
	done    chan struct{}
	closed  bool
	wg      sync.WaitGroup
}

// newRetrier retries at most max commands at once; now is the clock their
// deadlines (a claim's lease, a replay window) are read by.
func newRetrier(max int, now func() time.Time) *retrier {
	return &retrier{max: max, now: now, pending: map[string]bool{}, done: make(chan struct{})}
}

// retry schedules op under id until it succeeds or until passes. It
// reports false when it is not scheduled: too many are pending, the
// deadline has passed or the retrier is closed (a retry already pending
// under id counts as scheduled).
func (r *retrier) retry(id string, until time.Time, op func(context.Context) error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending[id] {
		return true
	}
	if r.closed || len(r.pending) >= r.max || !r.now().Before(until) {
		return false
	}
	r.pending[id] = true
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer func() { r.mu.Lock(); delete(r.pending, id); r.mu.Unlock() }()
		wait := retryFirst
		var err error
		for attempt := 1; r.now().Before(until); attempt++ {
			select {
			case <-time.After(wait):
			case <-r.done:
				return
			}
			if err = op(context.Background()); err == nil {
				if r.landed != nil {
					r.landed(attempt)
				}
				return
			}
			wait = min(2*wait, retryMax)
		}
		if r.gaveUp != nil {
			r.gaveUp(err)
		}
	}()
	return true
}

// has reports whether a retry is pending under id.
func (r *retrier) has(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pending[id]
}

// Pending is the number of commands being retried.
func (r *retrier) Pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}

// close stops every retry and waits for them.
func (r *retrier) close() {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.done)
	}
	r.mu.Unlock()
	r.wg.Wait()
}
