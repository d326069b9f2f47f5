package signature

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// keyPrefix namespaces tokengate's replay keys in a shared Redis.
const keyPrefix = "tokengate:replay:"

// RedisStore is the replay store shared by several replicas: one
// "SET key 1 NX PX ttl" per id, so the first replica to see a message
// claims it and every other one (or a later replay) finds it taken.
type RedisStore struct {
	c *redis.Client
}

var _ Store = (*RedisStore)(nil)

// NewRedisStore connects lazily to a redis:// or rediss:// URL (password
// and database in the URL). Each command is bounded by timeout; the
// client reconnects by itself when the server comes back.
func NewRedisStore(rawURL string, timeout time.Duration) (*RedisStore, error) {
	o, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("replay store: %w", err)
	}
	if timeout <= 0 {
		timeout = time.Second
	}
	o.DialTimeout, o.ReadTimeout, o.WriteTimeout = timeout, timeout, timeout
	o.MaxRetries = 1
	o.DisableIdentity = true // no CLIENT SETINFO: works with older servers
	return &RedisStore{c: redis.NewClient(o)}, nil
}

// Claim sets every key with NX; if one existed, the keys this call set
// are deleted again and the message is a replay.
func (r *RedisStore) Claim(ctx context.Context, keys []string, ttl time.Duration) (bool, error) {
	pipe := r.c.Pipeline()
	cmds := make([]*redis.BoolCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.SetNX(ctx, keyPrefix+k, 1, ttl)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return false, err
	}
	var set []string
	fresh := true
	for i, c := range cmds {
		if c.Val() {
			set = append(set, keys[i])
		} else {
			fresh = false
		}
	}
	if !fresh && len(set) > 0 {
		if err := r.Forget(ctx, set); err != nil {
			return false, err
		}
	}
	return fresh, nil
}

// Forget deletes keys.
func (r *RedisStore) Forget(ctx context.Context, keys []string) error {
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = keyPrefix + k
	}
	return r.c.Del(ctx, full...).Err()
}

// Ping checks the connection (readiness, `tokengate check`).
func (r *RedisStore) Ping(ctx context.Context) error { return r.c.Ping(ctx).Err() }

// Close closes the client's connections.
func (r *RedisStore) Close() error { return r.c.Close() }
