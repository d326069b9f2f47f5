package stack

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/pinger"
)

// SharedHealthInterval is how often the redis: block's server is pinged
// in the background, for the status page.
const SharedHealthInterval = 3 * time.Second

// SharedRedisStatus is the redis: block's server as the status page shows
// it. Never its URL (which may hold a password).
type SharedRedisStatus struct {
	// Configured: the configuration has a redis: block.
	Configured bool
	// Health is the last background PING's result (AUTH included: a
	// wrong password fails it); nil without a block. It never waits on
	// Redis.
	Health func() error
}

// SharedRedis describes the redis: block's server the stack uses.
func (s *Stack) SharedRedis() SharedRedisStatus { return s.shared }

func sharedStatus(h *sharedRedis) SharedRedisStatus {
	if h == nil {
		return SharedRedisStatus{}
	}
	return SharedRedisStatus{Configured: true, Health: h.health.Err}
}

// watchShared pings the redis: block's server every SharedHealthInterval
// (each ping bounded by redis.timeout) and keeps the last result. A
// failure is logged once, when Redis stops answering: what uses it falls
// back by design (rate limits count per replica, shared egress entries
// request their own tokens), so readiness does not depend on it, and the
// log and the status page are where a broken Redis shows.
func watchShared(c *redis.Client, timeout time.Duration, log *zap.Logger) *pinger.Watcher {
	return pinger.Start(pinger.Options{
		Ping: func(ctx context.Context) error { return c.Ping(ctx).Err() }, Timeout: timeout, Interval: SharedHealthInterval,
		Name: "shared Redis", Log: log,
		Down: "shared Redis (redis:) unreachable: rate limits count in each replica's memory and shared egress entries request their own tokens until it answers; readiness is not affected",
		Up:   "shared Redis (redis:) reachable again",
	})
}
