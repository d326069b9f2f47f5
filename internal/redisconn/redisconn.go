// Package redisconn opens the client of the top-level redis: block, the
// Redis server that replicas share state through (route rate limits, the
// embedded Token URL's buckets, shared egress tokens). One client serves
// every such use of a configuration.
package redisconn

import (
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/redisurl"
)

// New returns a client for r (which must be On), connecting lazily: a
// Redis that is down makes its commands fail, not New. Every command, and
// the wait for a pooled connection, is bounded by r.Timeout, the caller's
// context deadline included. A command is never retried by the client
// (one whose reply timed out may have run: each caller decides whether
// running it twice is safe). The URL, which may hold a password, is never
// part of an error.
func New(r *config.Redis) (*redis.Client, error) {
	if !r.On() {
		return nil, errors.New("redis: no redis.url configured")
	}
	o, err := redisurl.Parse(r.URL)
	if err != nil {
		return nil, fmt.Errorf("redis.url: %w", err)
	}
	t := r.Timeout.D()
	if t <= 0 {
		t = config.DefaultRedisTimeout
	}
	o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout = t, t, t, t
	o.ContextTimeoutEnabled = true
	o.MaxRetries = -1        // no retry: see above
	o.DisableIdentity = true // no CLIENT SETINFO: works with older servers
	return redis.NewClient(o), nil
}
