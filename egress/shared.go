package egress

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Shared-store outcomes (SharedOptions.OnEvent).
const (
	SharedRead        = "read"
	SharedFetched     = "fetched"
	SharedFallback    = "fallback"
	SharedInvalidated = "invalidated"
)

// lockedGrant makes a token request while the caller holds the entry's
// shared lock (RefreshGrant: the refresh token is shared too).
type lockedGrant interface {
	tokenLocked(ctx context.Context, l *sharedLock) (*Token, error)
}

// sharedGrant is a Source's grant when the entry shares its tokens: the
// access token in Redis is used while it is fresh; when there is none a
// replica takes the lock, requests one and stores it, and the others
// wait for it. When Redis does not answer, a client-credentials entry
// requests its own token (logged once per outage, counted each time);
// an authorization-code entry does not refresh (its refresh token is
// shared) and keeps its access token until it expires.
type sharedGrant struct {
	st        *SharedStore
	inner     Grant                                     // the entry's grant; nil: client credentials
	own       func(ctx context.Context) (*Token, error) // this replica's own request; nil: none (authorization code)
	refreshAt func(*Token) time.Time
	log       *zap.Logger
	degraded  atomic.Bool
	skipUntil atomic.Int64 // unix ns: after a failure, Redis is not asked again before this

	mu      sync.Mutex
	refused string // the stored value of the last token an upstream refused here
}

// notRequested wraps the failure of an attempt that made no token
// request (it waited for another replica, or Redis failed): the Source
// does not count it as a token request.
type notRequested struct{ err error }

func (e *notRequested) Error() string { return e.err.Error() }
func (e *notRequested) Unwrap() error { return e.err }

func (g *sharedGrant) useLogger(l *zap.Logger) {
	g.log = l
	if u, ok := g.inner.(interface{ useLogger(*zap.Logger) }); ok {
		u.useLogger(l)
	}
}

// fresh reports whether t, read from the store, may be used: not the
// one refused here, and not yet due for renewal.
func (g *sharedGrant) fresh(t *Token) bool {
	if t == nil {
		return false
	}
	g.mu.Lock()
	refused := t.shared != "" && t.shared == g.refused
	g.mu.Unlock()
	now := time.Now()
	return !refused && now.Before(g.refreshAt(t)) && now.Before(usableUntil(t))
}

// redisRetryAfter: after Redis failed, a replica uses its own tokens
// without asking Redis (whose failure may take its dial retries, about
// a second) for this long.
const redisRetryAfter = 5 * time.Second

// errNotAsked: Redis failed a moment ago and was not asked.
var errNotAsked = errors.New("the shared Redis failed moments ago and is not asked again yet")

// Token implements Grant.
func (g *sharedGrant) Token(ctx context.Context) (*Token, error) {
	if time.Now().UnixNano() < g.skipUntil.Load() {
		return g.fallback(ctx, errNotAsked)
	}
	t, err := g.st.loadToken(ctx)
	for {
		if err != nil {
			return g.fallback(ctx, err)
		}
		g.reachable()
		if g.fresh(t) {
			g.st.event(SharedRead)
			g.observe(t)
			return t, nil
		}
		var l *sharedLock
		if l, err = g.st.lock(ctx); err != nil {
			return g.fallback(ctx, err)
		}
		if l != nil {
			return g.locked(ctx, l)
		}
		// Another replica is requesting a token: wait for it, or for its
		// lock to go (it failed, or died: the lock expires).
		var held bool
		for held = true; held; {
			if err := sleep(ctx, pollEvery); err != nil {
				return nil, &notRequested{fmt.Errorf("waiting for the token another replica is requesting: %w", err)}
			}
			if t, held, err = g.st.poll(ctx); err != nil || g.fresh(t) {
				break
			}
		}
	}
}

// locked requests a token under the lock l and stores it.
func (g *sharedGrant) locked(ctx context.Context, l *sharedLock) (*Token, error) {
	defer g.st.release(l)
	if t, err := g.st.loadToken(ctx); err == nil && g.fresh(t) {
		g.st.event(SharedRead) // stored between our look and our lock
		g.observe(t)
		return t, nil
	}
	var t *Token
	var err error
	switch in := g.inner.(type) {
	case lockedGrant:
		t, err = in.tokenLocked(ctx, l)
	case nil:
		t, err = g.own(ctx)
	default:
		t, err = in.Token(ctx)
	}
	if err != nil {
		return nil, err
	}
	if ttl := time.Until(g.refreshAt(t)); ttl > 0 {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.st.opTimeout)
		v, err := g.st.saveToken(sctx, t, ttl)
		cancel()
		if err != nil {
			g.log.Warn("the access token could not be stored for the other replicas; they request their own", zap.Error(err))
		} else {
			t.shared = v
		}
	}
	g.st.event(SharedFetched)
	return t, nil
}

// observe passes the refresh token generation a shared access token
// came with to the refresh grant, which remembers the highest seen.
func (g *sharedGrant) observe(t *Token) {
	if rg, ok := g.inner.(*RefreshGrant); ok && t.refreshGen > 0 {
		rg.file.observe(t.refreshGen, g.log)
	}
}

// newConsent reports whether the shared refresh token's generation is
// newer than any this replica saw (one HGET; false for a client
// credentials entry, or when Redis does not answer): a Source backing
// off retries at once (consentWatcher).
func (g *sharedGrant) newConsent(ctx context.Context) bool {
	rg, ok := g.inner.(*RefreshGrant)
	if !ok {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, g.st.opTimeout)
	defer cancel()
	gen, err := g.st.refreshGeneration(ctx)
	return err == nil && gen > rg.file.seenMax.Load()
}

// fallback is the answer when Redis failed with err.
func (g *sharedGrant) fallback(ctx context.Context, err error) (*Token, error) {
	if !errors.Is(err, errNotAsked) {
		g.skipUntil.Store(time.Now().Add(redisRetryAfter).UnixNano())
	}
	if !g.degraded.Swap(true) {
		if g.own != nil {
			g.log.Warn("the shared token store does not answer: this replica requests its own tokens until it does", zap.Error(err))
		} else {
			g.log.Warn("the shared token store does not answer: the shared refresh token is not used until it does (the current access token serves until it expires)", zap.Error(err))
		}
	}
	g.st.event(SharedFallback)
	if g.own == nil {
		return nil, &notRequested{fmt.Errorf("the shared refresh token is in Redis, which does not answer (%w): no refresh until it does", err)}
	}
	return g.own(ctx)
}

// reachable notes that Redis answered again.
func (g *sharedGrant) reachable() {
	if g.degraded.Swap(false) {
		g.log.Info("the shared token store answers again: tokens are shared again")
	}
}

// invalidate deletes t from the store after an upstream refused it,
// unless another replica already replaced it: one 401 per token empties
// the store once, however many replicas saw it.
func (g *sharedGrant) invalidate(t *Token) {
	if t.shared == "" {
		return // this replica's own token: not in the store
	}
	g.mu.Lock()
	g.refused = t.shared
	g.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), g.st.opTimeout)
	defer cancel()
	dropped, err := g.st.dropToken(ctx, t.shared)
	switch {
	case err != nil:
		g.log.Warn("the refused access token could not be deleted from the shared store; this replica does not use it again", zap.Error(err))
	case dropped:
		g.st.event(SharedInvalidated)
		g.log.Info("upstream refused the shared access token: deleted from the shared store")
	}
}

// isNotRequested reports whether err comes from an attempt that made no
// token request.
func isNotRequested(err error) bool {
	var nr *notRequested
	return errors.As(err, &nr)
}
