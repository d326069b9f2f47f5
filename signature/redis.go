package signature

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
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
	releaser *releaser
}

var _ Store = (*RedisStore)(nil)

// RedisOptions configures a RedisStore.
type RedisOptions struct {
	// Timeout bounds each command (default 1s).
	Timeout time.Duration
	// Now is the clock that a claim's lease (Ticket.Until) is read by
	// when a failed release is retried; default time.Now. Redis expires
	// keys by its own clock.
	Now func() time.Time
}

// NewRedisStore connects lazily to a redis:// or rediss:// URL (password
// and database in the URL). Each command is bounded by o.Timeout; the
// client reconnects by itself when the server comes back.
func NewRedisStore(rawURL string, o RedisOptions) (*RedisStore, error) {
	ro, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("replay store: %w", err)
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	ro.DialTimeout, ro.ReadTimeout, ro.WriteTimeout = o.Timeout, o.Timeout, o.Timeout
	ro.MaxRetries = 1         // safe: every script is idempotent for its owner
	ro.DisableIdentity = true // no CLIENT SETINFO: works with older servers
	r := &RedisStore{c: redis.NewClient(ro)}
	r.releaser = newReleaser(r.releaseOnce, o.Now)
	return r, nil
}

// Claim implements Store.
func (r *RedisStore) Claim(ctx context.Context, t Ticket, lease time.Duration) (State, error) {
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

// Take implements Store.
func (r *RedisStore) Take(ctx context.Context, t Ticket, ttl time.Duration) error {
	return takeScript.Run(ctx, r.c, []string{keyPrefix + t.Key}, t.Owner, ttl.Milliseconds()).Err()
}

// Release implements Store: a release that fails is retried in the
// background until it succeeds, the claim's lease ends or the store is
// closed.
func (r *RedisStore) Release(ctx context.Context, t Ticket) error {
	err := r.releaseOnce(ctx, t)
	if err != nil {
		r.releaser.retry(t)
	}
	return err
}

func (r *RedisStore) releaseOnce(ctx context.Context, t Ticket) error {
	return releaseScript.Run(ctx, r.c, []string{keyPrefix + t.Key}, t.Owner).Err()
}

// PendingReleases is the number of releases being retried in the
// background.
func (r *RedisStore) PendingReleases() int { return r.releaser.Pending() }

// Ping checks the connection (readiness, `tokengate check`).
func (r *RedisStore) Ping(ctx context.Context) error { return r.c.Ping(ctx).Err() }

// Close stops the releases retried in the background and closes the
// client's connections.
func (r *RedisStore) Close() error {
	r.releaser.close()
	return r.c.Close()
}
