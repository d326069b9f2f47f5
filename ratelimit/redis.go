package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// keyPrefix namespaces tokengate's buckets in a shared Redis (redis_rate
// puts "rate:" in front).
const keyPrefix = "tokengate:rl:"

// DefaultRetry is how long, after a Redis command failed, decisions are
// made in memory before one request tries Redis again.
const DefaultRetry = time.Second

// ErrDown: Redis failed recently; the decision is made in memory until
// the next attempt.
var ErrDown = errors.New("ratelimit: Redis failed recently; counting in memory")

// Redis holds buckets in a Redis server that replicas share, as GCRA
// state (one key per bucket, expiring once the bucket is full again):
// every replica takes from the same bucket, so N replicas give a key the
// budget of one. Safe for concurrent use.
type Redis struct {
	lim     *redis_rate.Limiter
	timeout time.Duration
	retry   time.Duration
	now     func() time.Time
	log     *zap.Logger
	// downUntil is when (unix ns) Redis is tried again after a failure
	// (0: up); probing is set while one request tries it.
	downUntil atomic.Int64
	probing   atomic.Bool
}

// RedisOptions configures a Redis.
type RedisOptions struct {
	// Timeout bounds each command (and the wait for a connection);
	// default 1s.
	Timeout time.Duration
	// Retry is how long after a failure decisions are made in memory
	// before one request tries Redis again; default DefaultRetry.
	Retry time.Duration
	// Now is the clock of the retry; default time.Now. The buckets run on
	// Redis's own clock (TIME), the same for every replica.
	Now func() time.Time
	// Logger hears once when Redis fails and once when it is back; nil:
	// no logging.
	Logger *zap.Logger
}

// NewRedis counts in the Redis that c reaches. c's own timeouts should be
// no longer than o.Timeout (internal/redisconn sets them so).
func NewRedis(c redis.UniversalClient, o RedisOptions) *Redis {
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.Retry <= 0 {
		o.Retry = DefaultRetry
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return &Redis{lim: redis_rate.NewLimiter(c), timeout: o.Timeout, retry: o.Retry, now: o.Now, log: o.Logger}
}

// Take takes one token from the bucket of key in the family bucket;
// when none is left it says how long until one will be. err (ErrDown, or
// Redis's) means nothing was decided.
func (r *Redis) Take(ctx context.Context, bucket, key string, l Limit) (bool, time.Duration, error) {
	res, err := r.run(ctx, bucket, key, l, 1)
	if err != nil {
		return false, 0, err
	}
	if res.Allowed >= 1 {
		return true, 0, nil
	}
	return false, max(res.RetryAfter, 0), nil
}

// Status is a bucket's state, read without taking from it.
type Status struct {
	// Tokens held now: a request is allowed when it is at least 1.
	Tokens float64
	// Wait until the bucket holds one token again (0 when it does).
	Wait time.Duration
}

// Peek reads the bucket of key without taking a token: GCRA with a cost
// of 0 (redis_rate's AllowN with n = 0), which rewrites the bucket's
// state unchanged.
func (r *Redis) Peek(ctx context.Context, bucket, key string, l Limit) (Status, error) {
	res, err := r.run(ctx, bucket, key, l, 0)
	if err != nil {
		return Status{}, err
	}
	interval := l.Per / time.Duration(l.Rate)
	// ResetAfter is how far the bucket is from full: Burst - ResetAfter/interval tokens.
	tokens := float64(l.Burst) - float64(res.ResetAfter)/float64(interval)
	wait := max(res.ResetAfter-time.Duration(l.Burst-1)*interval, 0)
	if tokens >= 1 {
		wait = 0
	}
	return Status{Tokens: max(tokens, 0), Wait: wait}, nil
}

// run asks Redis, bounded by the timeout, unless it failed recently.
func (r *Redis) run(ctx context.Context, bucket, key string, l Limit, n int) (*redis_rate.Result, error) {
	if !l.valid() {
		return nil, errors.New("ratelimit: a limit without a rate is counted in memory")
	}
	probe, ok := r.begin()
	if !ok {
		return nil, ErrDown
	}
	// A request that goes away does not cut the command short: a cancelled
	// command would read as Redis failing.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.timeout)
	defer cancel()
	res, err := r.lim.AllowN(cctx, redisKey(bucket, key), redis_rate.Limit{Rate: l.Rate, Period: l.Per, Burst: l.Burst}, n)
	r.end(probe, err)
	return res, err
}

// begin reports whether to ask Redis now, and whether this request is
// the one probing it after a failure.
func (r *Redis) begin() (probe, ok bool) {
	until := r.downUntil.Load()
	if until == 0 {
		return false, true
	}
	if r.now().UnixNano() < until || !r.probing.CompareAndSwap(false, true) {
		return false, false
	}
	return true, true
}

// end notes the outcome of a command: a failure keeps Redis out of use
// for the retry interval (logged when it was up), a probe's success puts
// it back.
func (r *Redis) end(probe bool, err error) {
	if err != nil {
		prev := r.downUntil.Swap(r.now().Add(r.retry).UnixNano())
		if probe {
			r.probing.Store(false)
		}
		if prev == 0 {
			r.log.Warn("rate limits: Redis does not answer; each replica counts in its own memory until it does (senders get up to one budget per replica meanwhile)", zap.Error(err))
		}
		return
	}
	if probe {
		r.downUntil.Store(0)
		r.probing.Store(false)
		r.log.Info("rate limits: Redis answers again; the replicas share their buckets again")
	}
}

// redisKey is the Redis key of a bucket: a hash of the family and the key,
// each length-prefixed, so no two (bucket, key) pairs share a key whatever
// bytes they hold, and a key is never longer than a hash.
func redisKey(bucket, key string) string {
	h := sha256.New()
	var n [8]byte
	for _, s := range []string{bucket, key} {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	return keyPrefix + hex.EncodeToString(h.Sum(nil))
}
