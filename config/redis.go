package config

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/tokengate/tokengate/internal/redisurl"
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

// redisURL checks a redis:// or rediss:// URL at path p (redisurl.Check:
// parsed as the client will, the password not cut short by an unescaped
// character), and a password only from the environment. No message holds
// a part of the URL.
func (v *validator) redisURL(p, raw string) {
	if err := redisurl.Check(raw); err != nil {
		v.add(p, "%v", err)
		return
	}
	u, _ := url.Parse(raw)
	if _, hasPass := u.User.Password(); hasPass && !v.c.envRefs[p] {
		v.add(p, "a password in the URL must come from the environment (${REDIS_URL} or redis://:${REDIS_PASSWORD}@host)")
	}
}

// TokenKeySize is the length of redis.token_key once decoded: AES-256.
const TokenKeySize = 32

// egressShared checks an egress entry's token.shared at p: "redis" needs
// the redis block and a token key (tokens are stored encrypted).
func (v *validator) egressShared(p, shared string) {
	switch shared {
	case "":
		return
	case SharedRedis:
	default:
		v.add(p, "must be redis (or left out: each replica its own token), got %q", shared)
		return
	}
	r := v.c.Redis
	if !r.On() {
		v.add(p, "shared: redis needs the top-level redis block (redis.url) that the replicas share")
		return
	}
	switch {
	case r.TokenKey == "" && r.TokenKeyFile == "":
		v.add(p, "shared: redis needs redis.token_key (${ENV}: base64 of 32 random bytes, `openssl rand -base64 32`) or redis.token_key_file: tokens are stored in Redis encrypted with it")
	case r.TokenKey != "":
		if _, err := DecodeTokenKey(r.TokenKey); err != nil {
			v.add(p, "shared: redis: redis.token_key %v", err)
		}
	}
}

// DecodeTokenKey decodes redis.token_key (or the content of
// token_key_file, surrounding white space trimmed): strict base64 of
// TokenKeySize bytes. The error never holds the key.
func DecodeTokenKey(s string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != TokenKeySize {
		return nil, fmt.Errorf("must be base64 of %d random bytes (`openssl rand -base64 32`)", TokenKeySize)
	}
	return b, nil
}
