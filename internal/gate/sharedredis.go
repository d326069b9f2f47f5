package gate

import (
	"reflect"

	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/redisconn"
	"github.com/tokengate/tokengate/internal/stack"
)

// sharedRedis is the client of the top-level redis block that shared
// egress entries (token.shared: redis) keep their tokens through, and
// the block it was made from.
type sharedRedis struct {
	cfg config.Redis
	c   *redis.Client
}

// prepareRedis gives p the client cfg's shared entries need: the current
// one while the redis block is unchanged, else a new one (closed by
// discard, or made current by commit). None when no entry shares.
func (s *egressSet) prepareRedis(p *egressPlan, cfg *config.Config) error {
	shared := false
	for _, e := range cfg.Egress {
		shared = shared || e.Token.SharedOn()
	}
	if !shared {
		return nil
	}
	if s.redis != nil && reflect.DeepEqual(s.redis.cfg, *cfg.Redis) {
		p.redis = s.redis
		return nil
	}
	stack.RedisLogger(s.log)
	c, err := redisconn.New(cfg.Redis)
	if err != nil {
		return err
	}
	p.redis, p.newRedis = &sharedRedis{cfg: *cfg.Redis, c: c}, true
	return nil
}
