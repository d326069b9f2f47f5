package stack

import (
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/pinger"
	"github.com/tokengate/tokengate/internal/redisconn"
	"github.com/tokengate/tokengate/proxy"
	"github.com/tokengate/tokengate/ratelimit"
)

// The Redis of the top-level redis: block, shared by the replicas, and
// the route rate limits that count in it (or in memory without it). Both
// are kept across reloads like the replay store: built for a stack that
// does not serve yet, they are committed with CommitReplay or dropped
// with AbortReplay.

// sharedRedis is one client of the redis: block and what counts in it.
type sharedRedis struct {
	key    string // url and timeout: equal → the same client
	client *redis.Client
	limits *ratelimit.Redis
	health *pinger.Watcher
}

// close stops the health pings and closes the client.
func (h *sharedRedis) close() {
	h.health.Stop()
	_ = h.client.Close()
}

// redisClient returns the client of cfg.Redis (nil without one): the
// current one while the URL and timeout are unchanged, else a new one,
// used by the stack being built. Closing is handled by Commit/Abort and
// Close.
func (b *Builder) redisClient(cfg *config.Config) (*sharedRedis, error) {
	b.redisBuilt = true
	if !cfg.Redis.On() {
		b.redisNext = nil
		return nil, nil
	}
	key := fmt.Sprintf("%s|%s", cfg.Redis.URL, cfg.Redis.Timeout.D())
	for _, h := range []*sharedRedis{b.redisCur, b.redisNext} {
		if h != nil && h.key == key {
			b.redisNext = h
			return h, nil
		}
	}
	b.abortShared()
	b.redisBuilt = true
	redis.SetLogger(redisLog{b.log}) // go-redis's own messages, at debug level
	c, err := redisconn.New(cfg.Redis)
	if err != nil {
		return nil, err
	}
	h := &sharedRedis{key: key, client: c, limits: ratelimit.NewRedis(c, ratelimit.RedisOptions{
		Timeout: cfg.Redis.Timeout.D(), Logger: b.log.Named("ratelimit"),
	}), health: watchShared(c, cfg.Redis.Timeout.D(), b.log.Named("redis"))}

	b.redisNext = h
	return h, nil
}

// routeLimiter is a route's rate limiter and what it was made for.
type routeLimiter struct {
	spec  string
	keyed *ratelimit.Keyed
}

// rateLimits gives each route with a rate_limit its limiter, in Redis
// when shared is set. A route whose name, key, limit and Redis are those
// of the serving configuration keeps its limiter: its in-memory buckets
// survive the reload (a changed limit starts them afresh).
func (b *Builder) rateLimits(cfg *config.Config, shared *sharedRedis) []proxy.RateLimiter {
	out := make([]proxy.RateLimiter, len(cfg.Routes))
	next := map[string]*routeLimiter{}
	var limits *ratelimit.Redis
	if shared != nil {
		limits = shared.limits
	}
	for i, r := range cfg.Routes {
		rl := r.RateLimit
		if rl == nil {
			continue
		}
		l := proxy.RouteLimit(rl)
		spec := fmt.Sprintf("%s|%v|%p", rl.Key, l, limits)
		kept := b.limitsCur[r.Name]
		if kept == nil || kept.spec != spec {
			o := ratelimit.Options{Shared: limits}
			if b.metrics != nil {
				name := "route:" + r.Name
				o.OnFallback = func() { b.metrics.RateLimitFallback(name) }
			}
			kept = &routeLimiter{spec: spec, keyed: ratelimit.New(proxy.RouteLimiterName(r.Name), l, o)}
		}
		next[r.Name] = kept
		out[i] = kept.keyed
	}
	b.limitsNext = next
	return out
}

// RouteLimiter is the limiter the serving configuration counts route
// name's requests with (nil: none), for check --token.
func (b *Builder) RouteLimiter(name string) *ratelimit.Keyed {
	if l := b.limitsNext[name]; l != nil {
		return l.keyed
	}
	if l := b.limitsCur[name]; l != nil {
		return l.keyed
	}
	return nil
}

// commitShared makes what the last build used current; a Redis client no
// longer used is closed a minute later, when requests still on the old
// stack are done with it.
func (b *Builder) commitShared() {
	if !b.redisBuilt {
		return
	}
	if old := b.redisCur; old != nil && old != b.redisNext {
		old.health.Stop() // at once: the ping is cancelled; the client serves the old stack a minute more
		time.AfterFunc(time.Minute, func() { _ = old.client.Close() })
	}
	b.redisCur, b.redisNext, b.redisBuilt = b.redisNext, nil, false
	b.limitsCur, b.limitsNext = b.limitsNext, nil
}

// abortShared closes a client made for a stack that will not serve.
func (b *Builder) abortShared() {
	if h := b.redisNext; h != nil && h != b.redisCur {
		h.close()
	}
	b.redisNext, b.redisBuilt, b.limitsNext = nil, false, nil
}

// closeShared closes the current client (at shutdown).
func (b *Builder) closeShared() {
	b.abortShared()
	if h := b.redisCur; h != nil {
		h.close()
	}
}
