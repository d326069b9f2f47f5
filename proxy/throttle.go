package proxy

import (
	"sync"
	"time"
)

// warnEvery is how often a warning that each failing request would write
// (a store that cannot be written) is written at most.
const warnEvery = time.Second

// throttle lets one line through per interval and counts the lines it
// held back, for the next one to say: a store that cannot be written
// under load would otherwise write (and flush) a warning per request.
type throttle struct {
	mu      sync.Mutex
	every   time.Duration
	last    time.Time
	skipped int
}

// allow reports whether a line may be written at now, and how many were
// held back since the last one written.
func (t *throttle) allow(now time.Time) (ok bool, skipped int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.last.IsZero() && now.Sub(t.last) < t.every {
		t.skipped++
		return false, 0
	}
	t.last, skipped, t.skipped = now, t.skipped, 0
	return true, skipped
}
