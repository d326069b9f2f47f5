package verifier

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"github.com/tokengate/tokengate/internal/spans"
)

// CacheOptions configures a Cache.
type CacheOptions struct {
	// MaxEntries bounds the verified-token cache. Required (> 0).
	MaxEntries int
	// MaxTTL caps how long a verification is reused. An entry never
	// outlives its token's expiry either. Required (> 0).
	MaxTTL time.Duration
	// NegativeTTL is how long an identity provider's rejection (an
	// inactive introspection answer) is remembered; 0 disables it. Local
	// rejections (bad signature, bad format) are never cached: they are
	// cheap to repeat, and caching them would let a flood of random tokens
	// evict valid entries.
	NegativeTTL time.Duration
	// NegativeMaxEntries bounds the separate rejection cache.
	NegativeMaxEntries int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// OnHit, OnMiss and OnEvict, if set, are called for metrics. OnHit gets
	// the time the cached answer took.
	OnHit   func(time.Duration)
	OnMiss  func()
	OnEvict func()
}

// CacheStats are cumulative counters, safe to read at any time.
type CacheStats struct {
	Hits, Misses, NegativeHits, Evictions, Verifications uint64
}

// Cache puts a verification cache in front of another Verifier. Entries are
// keyed by the SHA-256 of the token (the token itself is never stored) and
// concurrent misses of one token are merged into one verification.
type Cache struct {
	next    Verifier
	pos     *store
	neg     *lru.Cache[[32]byte, time.Time]
	sf      singleflight.Group
	maxTTL  time.Duration
	negTTL  time.Duration
	now     func() time.Time
	onHit   func(time.Duration)
	onMiss  func()
	hits    atomic.Uint64
	misses  atomic.Uint64
	negHits atomic.Uint64
	evicted atomic.Uint64
	calls   atomic.Uint64
}

var _ Verifier = (*Cache)(nil)

// NewCache wraps next. It starts no goroutine.
func NewCache(next Verifier, o CacheOptions) (*Cache, error) {
	if o.MaxEntries <= 0 || o.MaxTTL <= 0 {
		return nil, errors.New("verifier: cache needs MaxEntries and MaxTTL above zero")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Cache{next: next, maxTTL: o.MaxTTL, negTTL: o.NegativeTTL, now: o.Now, onHit: o.OnHit, onMiss: o.OnMiss}
	c.pos = newStore(o.MaxEntries, func() {
		c.evicted.Add(1)
		if o.OnEvict != nil {
			o.OnEvict()
		}
	})
	if o.NegativeTTL > 0 {
		var err error
		if c.neg, err = lru.New[[32]byte, time.Time](max(o.NegativeMaxEntries, 1)); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// cacheKey returns the cache key of a token: its SHA-256.
func cacheKey(token string) [32]byte {
	// The conversion shares the string's bytes (Sum256 neither keeps nor
	// changes them), so a cache hit does not copy the token.
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
}

// Verify answers from the cache or verifies once for all concurrent callers.
func (c *Cache) Verify(ctx context.Context, token string) (*Principal, error) {
	return c.VerifyFor(ctx, token, nil)
}

// scopedVerifier can limit a verification to some issuers (Set).
type scopedVerifier interface {
	VerifyFor(ctx context.Context, token string, issuers []string) (*Principal, error)
}

// VerifyFor is Verify for a route that accepts only issuers (nil: any). The
// cache is shared by all routes: a hit is returned whatever its issuer (the
// route's policy then checks Principal.Source); a miss is verified only by
// the route's issuers.
func (c *Cache) VerifyFor(ctx context.Context, token string, issuers []string) (*Principal, error) {
	ctx, span := spans.Start(ctx, "verify")
	p, how, err := c.verifyFor(ctx, token, issuers)
	endVerify(span, how, p, err)
	return p, err
}

// How a verification was answered, for its span.
const (
	answeredHit      = "hit"
	answeredNegative = "negative_hit"
	answeredMiss     = "miss"
)

func (c *Cache) verifyFor(ctx context.Context, token string, issuers []string) (*Principal, string, error) {
	key := cacheKey(token)
	now := c.now()
	if p, ok := c.pos.get(&key, now); ok {
		c.hits.Add(1)
		if c.onHit != nil {
			c.onHit(c.now().Sub(now))
		}
		return p, answeredHit, nil
	}
	if c.neg != nil {
		if until, ok := c.neg.Get(key); ok {
			if now.Before(until) {
				c.negHits.Add(1)
				return nil, answeredNegative, &InvalidError{Reason: "token is not active"}
			}
			c.neg.Remove(key)
		}
	}
	c.misses.Add(1)
	if c.onMiss != nil {
		c.onMiss()
	}
	sfKey := string(key[:])
	if issuers != nil {
		sfKey += strings.Join(issuers, "\x00") // a merged call answers only callers of the same route scope
	}
	k := key // the closure's own copy: key itself stays on the stack for hits
	ch := c.sf.DoChan(sfKey, func() (any, error) {
		c.calls.Add(1)
		// Detached from the first caller's cancellation: other callers wait
		// on this result. The verifiers' own timeouts bound it.
		var p *Principal
		var err error
		if sv, ok := c.next.(scopedVerifier); ok {
			p, err = sv.VerifyFor(context.WithoutCancel(ctx), token, issuers)
		} else {
			p, err = c.next.Verify(context.WithoutCancel(ctx), token)
		}
		c.store(k, p, err)
		return p, err
	})
	select {
	case <-ctx.Done():
		return nil, answeredMiss, unavailable("cache", ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			return nil, answeredMiss, r.Err
		}
		return r.Val.(*Principal), answeredMiss, nil
	}
}

// store records a result before the merged callers are released, so that a
// burst cannot cause a second verification.
func (c *Cache) store(key [32]byte, p *Principal, err error) {
	now := c.now()
	c.dropExpired(now)
	if err == nil {
		p.tokenID = hex.EncodeToString(key[:4])
		exp := now.Add(c.maxTTL)
		if !p.Expiry.IsZero() && p.Expiry.Before(exp) {
			exp = p.Expiry
		}
		if exp.After(now) {
			c.pos.add(&key, p, exp)
		}
		return
	}
	var ie *InvalidError
	if c.neg != nil && errors.As(err, &ie) && ie.remote {
		c.neg.Add(key, now.Add(c.negTTL))
	}
}

// expiredPerStore bounds the clean-up done by one store.
const expiredPerStore = 2

// dropExpired removes a few expired entries from the least recently used
// end. Entries expire individually and the LRU only evicts at capacity, so
// without this a steady stream of short-lived tokens would keep up to
// MaxEntries dead entries in memory. Each new entry pays for removing up to
// two dead ones: memory follows the live tokens, at O(1) per miss.
func (c *Cache) dropExpired(now time.Time) {
	c.pos.dropExpired(now, expiredPerStore)
	if c.neg == nil {
		return
	}
	for range expiredPerStore {
		k, until, ok := c.neg.GetOldest()
		if !ok || now.Before(until) {
			break
		}
		c.neg.Remove(k)
	}
}

// Len is the number of cached verifications.
func (c *Cache) Len() int { return c.pos.len() }

// Stats returns the counters so far.
func (c *Cache) Stats() CacheStats {
	return CacheStats{
		Hits: c.hits.Load(), Misses: c.misses.Load(), NegativeHits: c.negHits.Load(),
		Evictions: c.evicted.Load(), Verifications: c.calls.Load(),
	}
}
