// Package redisconn makes the go-redis client for the top-level redis
// block (config.Redis), the server replicas share state through.
package redisconn

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/config"
)

// New returns a client for cfg: every command bounded by cfg.Timeout
// (dial, read, write), one retry, no CLIENT SETINFO (older servers).
// The client connects lazily; the error is for a URL it cannot use.
func New(cfg *config.Redis) (*redis.Client, error) {
	if !cfg.On() {
		return nil, errors.New("redis: no redis.url configured")
	}
	o, err := redis.ParseURL(cfg.URL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // *url.Error quotes the URL, password and all
		}
		return nil, fmt.Errorf("redis.url: %w", err)
	}
	if d := cfg.Timeout.D(); d > 0 {
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = d, d, d
	}
	o.MaxRetries = 1
	o.DisableIdentity = true
	return redis.NewClient(o), nil
}
