package verifier

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/time/rate"

	"github.com/tokengate/tokengate/internal/spans"
)

// floodRefetchInterval is the least time between two JWKS fetches caused
// by unknown kids once the refetch burst is spent. An issuer's key
// published during an unknown-kid flood is found by the next of these
// fetches, so its first token waits at most this long (plus the fetch),
// while the flood costs the issuer at most one fetch per interval.
const floodRefetchInterval = time.Second

// maxRefetchWaiters bounds the unknown-kid tokens waiting for a JWKS fetch
// at once; past it an unknown kid is answered 503 (retry) at once. The
// fetch the waiters share still runs, so a key published meanwhile is
// found by it and verifies the retried token.
const maxRefetchWaiters = 1024

// errRefetchLimited: the kid is unknown and too many tokens already wait
// for a fetch; the key may be new, so this is 503, not 401.
var errRefetchLimited = errors.New("unknown kid; too many tokens waiting for a JWKS refetch")

// fetchCall is one JWKS fetch; callers that arrive before it ends wait for
// it instead of starting (or paying for) another.
// Not x/sync/singleflight: a flood fetch is joined while only due (not yet
// started), and a caller must know if the fetch it joined began after it came (seq).
type fetchCall struct {
	done chan struct{}
	err  error
	seq  uint64 // set when it starts: fetches are numbered 1, 2, …
	// parent carries the span of the request whose unknown kid caused
	// the fetch (spans.Detached: never its cancellation), so the fetch's
	// span is that request's child.
	parent context.Context
}

func wait(ctx context.Context, call *fetchCall) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-call.done:
		return call.err
	}
}

// keysFor returns the keys that may have signed a token with kid (after
// OIDC discovery, if it has not succeeded yet). An unknown kid is answered
// from a JWKS fetched after the token arrived: it joins the fetch in
// flight (and, if that one started before the token came, the next one),
// or starts a fetch while the refetch bucket allows, or else joins the
// flood fetch due within floodRefetchInterval. A kid still unknown then is
// errUnknownKey (401); the caller never gets a 503 just because other
// tokens used up the bucket.
func (k *RemoteKeySet) keysFor(ctx context.Context, kid string) ([]key, error) {
	if _, err := k.loc.resolve(ctx, false); err != nil {
		return nil, err
	}
	k.mu.RLock()
	keys, lastErr, fetched, attempted, seen := k.lookup(kid), k.lastErr, k.fetched, k.attempted, k.started
	k.mu.RUnlock()
	now := k.now()
	if len(keys) > 0 {
		if now.Sub(fetched) > k.maxAge && now.Sub(attempted) > min(k.maxAge, 5*time.Second) {
			k.fetchNow(context.Background()) // in the background; this token uses the keys held: not its span
		}
		return keys, nil
	}
	if lastErr != nil && now.Sub(attempted) < min(every(k.refetch.Limit()), 5*time.Second) {
		return nil, fmt.Errorf("fetching keys: %w", lastErr)
	}
	// Until keys were fetched once, an unknown kid is every kid: the
	// fetch is not charged to the bucket.
	charged := !fetched.IsZero()
	for range 3 { // a joined fetch that started before the token, then a fresh one
		call, err := k.nextFetch(ctx, charged)
		if err != nil {
			return nil, err
		}
		err = wait(ctx, call)
		k.mu.Lock()
		k.waiters--
		k.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("fetching keys: %w", err)
		}
		k.mu.RLock()
		keys = k.lookup(kid)
		k.mu.RUnlock()
		if len(keys) > 0 {
			return keys, nil
		}
		if call.seq > seen {
			break // fetched after the token arrived: the kid is not the issuer's
		}
	}
	return nil, errUnknownKey
}

// every is the period of a rate.Limit, for the retry-after-failure rule.
func every(l rate.Limit) time.Duration {
	return time.Duration(float64(time.Second) / float64(l))
}

// nextFetch returns the fetch an unknown kid waits for, counted among the
// waiters: the one in flight, the flood fetch already due, a new one
// started now (uncharged, or while the bucket has a token and no flood
// fetch ran within the interval), or a new flood fetch due
// floodRefetchInterval after the last charged one. Past maxWaiters it is
// errRefetchLimited; a fetch is then in flight or due already.
// ctx's span, if any, becomes the parent of a fetch it starts.
func (k *RemoteKeySet) nextFetch(ctx context.Context, charged bool) (*fetchCall, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if charged && k.waiters >= k.maxWaiters {
		return nil, errRefetchLimited
	}
	k.waiters++
	switch {
	case k.inflight != nil:
		return k.inflight, nil
	case k.due != nil:
		return k.due, nil
	}
	now := k.now()
	call := &fetchCall{done: make(chan struct{}), parent: spans.Detached(ctx)}
	if !charged || !now.Before(k.spacedUntil) && k.refetch.AllowN(now, 1) {
		k.launch(call, charged, now)
		return call, nil
	}
	delay := min(max(k.lastCharged.Add(floodRefetchInterval).Sub(now), 0), floodRefetchInterval)
	k.due = call
	time.AfterFunc(delay, func() { k.startDue(call) })
	return call, nil
}

// startDue starts the due flood fetch once no other fetch is in flight.
func (k *RemoteKeySet) startDue(call *fetchCall) {
	k.mu.Lock()
	for k.inflight != nil {
		running := k.inflight
		k.mu.Unlock()
		<-running.done
		k.mu.Lock()
	}
	k.due = nil
	now := k.now()
	k.spacedUntil = now.Add(floodRefetchInterval)
	k.launch(call, true, now)
	k.mu.Unlock()
}

// fetchNow returns the fetch in flight or starts one outside the bucket
// (start-up, SIGHUP, the periodic refresh). It never waits. ctx's span,
// if any, becomes the parent of a fetch it starts.
func (k *RemoteKeySet) fetchNow(ctx context.Context) *fetchCall {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.inflight != nil {
		return k.inflight
	}
	call := &fetchCall{done: make(chan struct{}), parent: spans.Detached(ctx)}
	k.launch(call, false, k.now())
	return call
}

// launch starts call in the background. k.mu is held.
func (k *RemoteKeySet) launch(call *fetchCall, charged bool, now time.Time) {
	k.started++
	call.seq = k.started
	k.inflight = call
	if charged {
		k.lastCharged = now
	}
	go func() {
		call.err = k.fetch(call.parent) // never cancelled: the client's timeout bounds it
		k.mu.Lock()
		k.inflight = nil
		k.mu.Unlock()
		close(call.done)
	}()
}

// idle reports whether no fetch is in flight or due (for tests).
func (k *RemoteKeySet) idle() bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.inflight == nil && k.due == nil
}
