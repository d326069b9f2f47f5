package diagnose

import (
	"context"
	"fmt"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/redisconn"
	"github.com/tokengate/tokengate/proxy"
	"github.com/tokengate/tokengate/ratelimit"
	"github.com/tokengate/tokengate/verifier"
)

// explainRateLimit says whether the token's sender is past the matched
// route's rate_limit right now. With a redis: block the shared bucket is
// read without taking from it (GCRA at a cost of 0); without one the
// buckets live in each running gate's memory, which check cannot see.
// Being past the limit is a refusal (the gate would answer 429).
func (e *explainer) explainRateLimit(ctx context.Context, p *verifier.Principal, r *config.Route) {
	if r == nil || r.RateLimit == nil {
		return
	}
	rl := r.RateLimit
	lim := proxy.RouteLimit(rl)
	what := fmt.Sprintf("rate_limit %s, burst %d per %s", rl.Rate, rl.Burst, rl.Key)
	if rl.Key != config.RateKeyClientID && rl.Key != config.RateKeySubject {
		e.ok("%s: counted per address or signed route, which a token does not name: not looked up", what)
		return
	}
	who := fmt.Sprintf("client_id %q", p.ClientID)
	if rl.Key == config.RateKeySubject {
		who = fmt.Sprintf("sub %q", p.Subject)
	}
	who += fmt.Sprintf(" of issuer %q", p.Source)
	if !e.cfg.Redis.On() {
		e.ok("%s: %s is counted in each running gate's memory, which check cannot see (with a redis: block the shared bucket is read)", what, who)
		return
	}
	c, err := redisconn.New(e.cfg.Redis)
	if err != nil {
		e.no("%s: %v", what, err)
		return
	}
	defer c.Close()
	shared := ratelimit.NewRedis(c, ratelimit.RedisOptions{Timeout: e.cfg.Redis.Timeout.D()})
	st, err := shared.Peek(ctx, proxy.RouteLimiterName(r.Name), proxy.SenderKey(rl.Key, p, ""), lim)
	switch {
	case err != nil:
		e.no("%s: the shared bucket in Redis could not be read: %v", what, err)
	case st.Tokens >= 1:
		e.ok("%s: %s has %.1f of %d requests left now (read in Redis without taking one)", what, who, st.Tokens, rl.Burst)
	default:
		e.limited = true
		e.no("%s: %s is past it now: the gate answers 429 rate_limited; its next request is accepted in %ss", what, who, ratelimit.RetryAfter(st.Wait))
	}
}
