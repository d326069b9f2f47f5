package config

import (
	"net/url"
	"time"
)

// DefaultRedisTimeout bounds each command to the shared Redis server.
const DefaultRedisTimeout = time.Second

// Redis is the server that replicas share state through: shared egress
// tokens, the refresh token of a shared authorization-code entry, the
// embedded Token URL's buckets and per-sender route rate limits. The
// replay store (signatures.replay_store) and the delivery queue
// (queue.store) keep their own URLs, which may name the same server.
type Redis struct {
	// URL is redis://[:password@]host:port/db or rediss:// for TLS; a
	// password must come from the environment (${REDIS_URL}).
	URL string `yaml:"url"`
	// Timeout bounds each command. Default 1s.
	Timeout Duration `yaml:"timeout"`
	// TokenKey is the AES-256 key (base64 of 32 bytes, from ${ENV})
	// that encrypts every token and refresh token stored in Redis, so
	// Redis never holds a usable credential in clear. TokenKeyFile
	// names a file holding it instead. One of them is required when an
	// egress entry shares its token.
	TokenKey     string `yaml:"token_key"`
	TokenKeyFile string `yaml:"token_key_file"`
}

// On reports whether a shared Redis server is configured.
func (r *Redis) On() bool { return r != nil && r.URL != "" }

func (r *Redis) applyDefaults() {
	if r == nil {
		return
	}
	setDefault(&r.Timeout, Duration(DefaultRedisTimeout))
}

// redis validates the shared Redis block.
func (v *validator) redis() {
	r := v.c.Redis
	if r == nil {
		return
	}
	if r.URL == "" {
		v.add("redis.url", "is required when a redis block is given")
	} else {
		v.redisURL("redis.url", r.URL)
	}
	if r.Timeout.D() <= 0 {
		v.add("redis.timeout", "must be positive")
	}
	if r.TokenKey != "" && r.TokenKeyFile != "" {
		v.add("redis.token_key", "set token_key or token_key_file, not both")
	}
	if r.TokenKey != "" && !v.c.envPaths["redis.token_key"] {
		v.add("redis.token_key", "must come from the environment (${TOKENGATE_REDIS_KEY}) or token_key_file, never written in the file")
	}
}

// redisURL checks a redis:// or rediss:// URL at path p: a host, and a
// password only from the environment.
func (v *validator) redisURL(p, raw string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil || (u.Scheme != "redis" && u.Scheme != "rediss"):
		v.add(p, "must be a redis:// or rediss:// URL")
	case u.Host == "":
		v.add(p, "a redis URL needs a host")
	default:
		if _, hasPass := u.User.Password(); hasPass && !v.c.envRefs[p] {
			v.add(p, "a password in the URL must come from the environment (${REDIS_URL} or redis://:${REDIS_PASSWORD}@host)")
		}
	}
}
