package issuer

import (
	"math"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// maxTrackedKeys bounds how many clients and addresses keep a limiter; the
// least recently seen are forgotten first.
const maxTrackedKeys = 10_000

// keyedLimiter is a token bucket per key (client id or IP address).
type keyedLimiter struct {
	limit rate.Limit
	burst int
	m     *lru.Cache[string, *rate.Limiter]
}

func newKeyedLimiter(perSecond float64, burst int) *keyedLimiter {
	m, _ := lru.New[string, *rate.Limiter](maxTrackedKeys)
	return &keyedLimiter{limit: rate.Limit(perSecond), burst: burst, m: m}
}

// allow takes one token for key; when none is left it says how long until
// one will be.
func (k *keyedLimiter) allow(key string, now time.Time) (bool, time.Duration) {
	l, ok := k.m.Get(key)
	if !ok {
		l = rate.NewLimiter(k.limit, k.burst)
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

// spent reports whether key's bucket is empty now (and how long until a
// token is back), without taking one.
func (k *keyedLimiter) spent(key string, now time.Time) (bool, time.Duration) {
	l, ok := k.m.Peek(key)
	if !ok || l.TokensAt(now) >= 1 {
		return false, 0
	}
	r := l.ReserveN(now, 1)
	d := r.DelayFrom(now)
	r.CancelAt(now)
	return true, max(d, time.Second)
}

// retryAfterSeconds rounds a wait up to whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) int {
	return max(int(math.Ceil(d.Seconds())), 1)
}
