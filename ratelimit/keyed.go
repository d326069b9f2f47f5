package ratelimit

import (
	"context"
	"time"
)

// Keyed is one family of buckets: one limit, one bucket per key, counted
// in Redis when one is shared and in memory otherwise, or while Redis
// fails. Safe for concurrent use.
type Keyed struct {
	name       string
	limit      Limit
	local      *Local
	shared     *Redis
	now        func() time.Time
	onFallback func()
}

// Options configures a Keyed.
type Options struct {
	// Shared counts in Redis; nil: in memory only.
	Shared *Redis
	// MaxKeys bounds the keys kept in memory (default MaxKeys).
	MaxKeys int
	// Now is the clock of the in-memory buckets; default time.Now.
	Now func() time.Time
	// OnFallback, if set, is called for each decision made in memory
	// because Redis failed (for a metric).
	OnFallback func()
}

// New makes the family name (part of every Redis key: families of
// different names never share a bucket).
func New(name string, l Limit, o Options) *Keyed {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Keyed{name: name, limit: l, local: NewLocal(l, o.MaxKeys), shared: o.Shared, now: o.Now, onFallback: o.OnFallback}
}

// Limit is the family's limit.
func (k *Keyed) Limit() Limit { return k.limit }

// Shared reports whether the family counts in Redis.
func (k *Keyed) Shared() bool { return k.shared != nil && k.limit.valid() }

// Take takes one token from key's bucket; when none is left it says how
// long until one will be.
func (k *Keyed) Take(ctx context.Context, key string) (bool, time.Duration) {
	if k.Shared() {
		ok, wait, err := k.shared.Take(ctx, k.name, key, k.limit)
		if err == nil {
			return ok, wait
		}
		k.fellBack()
	}
	return k.local.Take(key, k.now())
}

// Spent reports whether key's bucket is empty (and how long until a
// token is back, at least a second), without taking one.
func (k *Keyed) Spent(ctx context.Context, key string) (bool, time.Duration) {
	if k.Shared() {
		s, err := k.shared.Peek(ctx, k.name, key, k.limit)
		if err == nil {
			if s.Tokens >= 1 {
				return false, 0
			}
			return true, max(s.Wait, time.Second)
		}
		k.fellBack()
	}
	return k.local.Spent(key, k.now())
}

// Peek reads key's bucket without taking from it: in Redis when the
// family is shared (err when Redis cannot be asked), else in memory.
func (k *Keyed) Peek(ctx context.Context, key string) (Status, error) {
	if k.Shared() {
		return k.shared.Peek(ctx, k.name, key, k.limit)
	}
	spent, wait := k.local.Spent(key, k.now())
	if !spent {
		wait = 0
	}
	return Status{Tokens: k.local.Tokens(key, k.now()), Wait: wait}, nil
}

func (k *Keyed) fellBack() {
	if k.onFallback != nil {
		k.onFallback()
	}
}
