package ratelimit

import (
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// MaxKeys bounds how many keys a Local tracks by default; the least
// recently seen are forgotten first (a forgotten key starts again with a
// full bucket).
const MaxKeys = 10_000

// Local is a token bucket per key, in this process's memory.
type Local struct {
	limit Limit
	m     *lru.Cache[string, *rate.Limiter]
}

// NewLocal tracks at most maxKeys keys (MaxKeys when not positive).
func NewLocal(l Limit, maxKeys int) *Local {
	if maxKeys <= 0 {
		maxKeys = MaxKeys
	}
	m, _ := lru.New[string, *rate.Limiter](maxKeys)
	return &Local{limit: l, m: m}
}

// Take takes one token from key's bucket at now; when none is left it
// says how long until one will be.
func (k *Local) Take(key string, now time.Time) (bool, time.Duration) {
	l, ok := k.m.Get(key)
	if !ok {
		l = rate.NewLimiter(k.limit.every(), k.limit.Burst)
		// A concurrent request may have added one meanwhile; keep the first.
		if prev, found, _ := k.m.PeekOrAdd(key, l); found {
			l = prev
		}
	}
	r := l.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// Spent reports whether key's bucket is empty at now (and how long until
// a token is back), without taking one.
func (k *Local) Spent(key string, now time.Time) (bool, time.Duration) {
	l, ok := k.m.Peek(key)
	if !ok || l.TokensAt(now) >= 1 {
		return false, 0
	}
	r := l.ReserveN(now, 1)
	if !r.OK() {
		return true, time.Second
	}
	d := r.DelayFrom(now)
	r.CancelAt(now)
	return true, max(d, time.Second)
}

// Tokens is what key's bucket holds at now (Burst for a key not seen).
func (k *Local) Tokens(key string, now time.Time) float64 {
	l, ok := k.m.Peek(key)
	if !ok {
		return float64(k.limit.Burst)
	}
	return l.TokensAt(now)
}
