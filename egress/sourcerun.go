// The Source's background refresh, and the waits of its backoff.

package egress

import (
	"context"
	"time"
)

// watchEvery is how often a Source backing off after a failure asks a
// grant that can tell (consentWatcher) whether a new consent arrived.
const watchEvery = time.Second

// consentWatcher is a grant that can tell cheaply (one Redis command)
// that what made it fail may have changed: a shared authorization-code
// entry whose refresh token generation moved (`tokengate authorize`
// stored a new consent, the replica holding the newest token restored
// it, another replica stored its rotation).
type consentWatcher interface {
	newConsent(ctx context.Context) bool
}

// Outcomes of pause.
const (
	pauseElapsed = iota
	pauseStopped // ctx or Close
	pauseChanged // changed was closed
	pauseConsent // a new consent ended the backoff
)

// pause waits d, or until stop, Close or changed end it. While failing,
// a consentWatcher grant is asked every watchEvery, and a new consent
// ends the backoff at once (notBefore cleared), so that an entry
// authorized again gets its token within about a second, not after a
// backoff of up to MaxBackoff.
func (s *Source) pause(d time.Duration, failing bool, stop <-chan struct{}, changed <-chan struct{}) int {
	t := time.NewTimer(d)
	defer t.Stop()
	var tick <-chan time.Time
	w, watch := s.o.Grant.(consentWatcher)
	if watch && failing && d > watchEvery {
		tk := time.NewTicker(watchEvery)
		defer tk.Stop()
		tick = tk.C
	}
	for {
		select {
		case <-t.C:
			return pauseElapsed
		case <-stop:
			return pauseStopped
		case <-s.ctx.Done():
			return pauseStopped
		case <-changed:
			return pauseChanged
		case <-tick:
			if w.newConsent(s.ctx) {
				s.mu.Lock()
				s.notBefore = time.Time{}
				s.mu.Unlock()
				s.log.Info("a new shared refresh token is in Redis: retrying now instead of after the backoff")
				return pauseConsent
			}
		}
	}
}

// Run renews the token in the background until ctx ends or Close is
// called: it fetches one at once, then again at each token's refresh
// time, and keeps retrying with backoff while none is valid, so that
// readiness recovers without waiting for a request.
func (s *Source) Run(ctx context.Context) {
	for {
		s.mu.Lock()
		next, failing := s.notBefore, s.failures > 0
		if s.tok != nil && time.Now().Before(usableUntil(s.tok)) {
			next = later(s.refreshAt(s.tok), s.notBefore)
		}
		changed := s.changed
		s.mu.Unlock()
		if wait := time.Until(next); wait > 0 {
			switch s.pause(wait, failing, ctx.Done(), changed) {
			case pauseStopped:
				return
			case pauseChanged:
				continue
			}
		}
		ch := s.group.DoChan(flightKey, s.flight)
		select {
		case <-ctx.Done():
			return
		case <-s.ctx.Done():
			return
		case <-ch:
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
