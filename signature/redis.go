package signature

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/pinger"
	"github.com/tokengate/tokengate/internal/redisurl"
)

// keyPrefix namespaces tokengate's replay keys in a shared Redis.
const keyPrefix = "tokengate:replay:"

// A key's value is its state and owner: "f" (in flight) or "t" (taken)
// followed by the owner. Each script is one atomic step, and running one
// twice (go-redis retries a command whose reply timed out) has the effect
// of running it once.
var (
	// claimScript: new → "f"..owner for the lease, and 0; the caller's own
	// claim found again → 0; in flight → 1; taken → 2.
	claimScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], 'f' .. ARGV[1], 'PX', ARGV[2])
  return 0
end
if string.sub(v, 1, 1) == 't' then return 2 end
if string.sub(v, 2) == ARGV[1] then return 0 end
return 1`)
	// takeScript: "t"..owner, keeping a longer expiry the key may have.
	takeScript = redis.NewScript(`
local ttl = tonumber(ARGV[2])
local left = redis.call('PTTL', KEYS[1])
if left > ttl then ttl = left end
redis.call('SET', KEYS[1], 't' .. ARGV[1], 'PX', ttl)
return 1`)
	// releaseScript: delete the key only while the owner holds it in
	// flight.
	releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == 'f' .. ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)
)

// RedisStore is the replay store shared by several replicas: one key per
// message, claimed, taken and released by Lua scripts that check the
// claim's owner, so the first replica to see a message claims it and
// every other one (or a later copy) finds it in flight or taken.
type RedisStore struct {
	c        *redis.Client
	log      *zap.Logger
	releases *retrier
	takes    *retrier
	health   *pinger.Watcher
}

var _ Store = (*RedisStore)(nil)

// RedisOptions configures a RedisStore.
type RedisOptions struct {
	// Timeout bounds each command (default 1s).
	Timeout time.Duration
	// Now is the clock that the deadlines of commands retried in the
	// background (a claim's lease, a replay window) are read by; default
	// time.Now. Redis expires keys by its own clock.
	Now func() time.Time
	// Logger hears of commands retried in the background and of the
	// store's health (nil: none); it never sees the URL.
	Logger *zap.Logger
}

// NewRedisStore connects lazily to a redis:// or rediss:// URL (password
// and database in the URL). Each command is bounded by o.Timeout; the
// client reconnects by itself when the server comes back. A background
// ping every HealthInterval keeps Health current until Close.
func NewRedisStore(rawURL string, o RedisOptions) (*RedisStore, error) {
	ro, err := redisurl.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("replay store: %w", err) // never the URL: it may hold a password
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	ro.DialTimeout, ro.ReadTimeout, ro.WriteTimeout = o.Timeout, o.Timeout, o.Timeout
	ro.MaxRetries = 1         // safe: every script is idempotent for its owner
	ro.DisableIdentity = true // no CLIENT SETINFO: works with older servers
	r := &RedisStore{c: redis.NewClient(ro), log: log, releases: newRetrier(maxPendingReleases, o.Now), takes: newRetrier(maxPendingTakes, o.Now)}
	r.takes.landed = func(attempts int) {
		log.Info("replay store: a delivered message was recorded after retrying", zap.Int("attempts", attempts))
	}
	r.takes.gaveUp = func(err error) {
		log.Warn("replay store: a delivered message could not be recorded within its replay window", zap.Error(err))
	}
	r.health = pinger.Start(pinger.Options{Ping: r.Ping, Timeout: o.Timeout, Interval: HealthInterval, Name: "replay store: Redis", Log: log,
		Down: "replay store unreachable: signed requests on replay routes get 503 and /readyz fails until it answers",
		Up:   "replay store reachable again"})
	return r, nil
}

// Claim implements Store. A message whose take is being retried in the
// background is taken: it was delivered, whatever Redis holds yet.
func (r *RedisStore) Claim(ctx context.Context, t Ticket, lease time.Duration) (State, error) {
	if r.takes.has(t.Key) {
		return Taken, nil
	}
	n, err := claimScript.Run(ctx, r.c, []string{keyPrefix + t.Key}, t.Owner, lease.Milliseconds()).Int()
	if err != nil {
		return 0, err
	}
	switch n {
	case 0:
		return Fresh, nil
	case 2:
		return Taken, nil
	}
	return InFlight, nil
}

// Take implements Store: a take that fails is retried in the background
// (every second at most once the store answers again) until it lands,
// the replay window ttl is over or the store is closed; meanwhile this
// replica answers a copy as taken, and other replicas find the claim in
// flight until its lease ends. The error says when the take could not be
// scheduled for a retry (too many pending).
func (r *RedisStore) Take(ctx context.Context, t Ticket, ttl time.Duration) error {
	take := func(ctx context.Context) error {
		return takeScript.Run(ctx, r.c, []string{keyPrefix + t.Key}, t.Owner, ttl.Milliseconds()).Err()
	}
	err := take(ctx)
	if err != nil && !r.takes.retry(t.Key, time.Now().Add(ttl), take) {
		return fmt.Errorf("%w (not retried: %d takes pending, or the store is closed)", err, maxPendingTakes)
	}
	return err
}

// Release implements Store: a release that fails is retried in the
// background until it succeeds, the claim's lease ends or the store is
// closed.
func (r *RedisStore) Release(ctx context.Context, t Ticket) error {
	release := func(ctx context.Context) error {
		return releaseScript.Run(ctx, r.c, []string{keyPrefix + t.Key}, t.Owner).Err()
	}
	err := release(ctx)
	if err != nil {
		r.releases.retry(t.Key+"\x00"+t.Owner, t.Until, release)
	}
	return err
}

// PendingReleases is the number of releases being retried in the
// background.
func (r *RedisStore) PendingReleases() int { return r.releases.Pending() }

// PendingTakes is the number of takes (delivered messages) being retried
// in the background.
func (r *RedisStore) PendingTakes() int { return r.takes.Pending() }

// Ping checks the connection (`tokengate check`).
func (r *RedisStore) Ping(ctx context.Context) error { return r.c.Ping(ctx).Err() }

// Health is the result of the last background ping, without waiting on
// Redis: nil when it answered, else an error that names the replay store
// (and never holds the URL or its password). It fails until the first
// ping answers.
func (r *RedisStore) Health() error { return r.health.Err() }

// Close stops the commands retried in the background and closes the
// client's connections.
func (r *RedisStore) Close() error {
	r.health.Stop()
	r.releases.close()
	r.takes.close()
	return r.c.Close()
}
