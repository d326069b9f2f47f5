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
	what := fmt.Sprintf("rate_limit %s, burst %d per %s", rl.Rate, rl.Burst, rl.Key)
	if rl.Key != config.RateKeyClientID && rl.Key != config.RateKeySubject {
		e.ok("%s: counted per address or signed route, which a token does not name: not looked up", what)
		return
	}
	claim, id, ok := proxy.Sender(rl.Key, p)
	if !ok {
		e.no("%s: the token names no client_id or sub: the gate answers 403 %s (the route's per-sender rate limit cannot count it)", what, proxy.DecisionNoSenderIdentity)
		return
	}
	who := fmt.Sprintf("%s %q of issuer %q", claim, id, p.Source)
	want := "client_id"
	if rl.Key == config.RateKeySubject {
		want = "sub"
	}
	if claim != want {
		who += fmt.Sprintf(" (the token has no %s: counted by its %s instead)", want, claim)
	}
	if !e.cfg.Redis.On() {
		e.ok("%s: %s is counted in each running gate's memory, which check cannot see (with a redis: block the shared bucket is read)", what, who)
		return
	}
	key, _ := proxy.SenderKey(rl.Key, p, "") // fails only where Sender did
	st, err := peekRoute(ctx, e.cfg, r, key)
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

// peekRoute reads route r's shared bucket for key in Redis without
// taking from it (GCRA at a cost of 0).
func peekRoute(ctx context.Context, cfg *config.Config, r *config.Route, key string) (ratelimit.Status, error) {
	c, err := redisconn.New(cfg.Redis)
	if err != nil {
		return ratelimit.Status{}, err
	}
	defer c.Close()
	shared := ratelimit.NewRedis(c, ratelimit.RedisOptions{Timeout: cfg.Redis.Timeout.D()})
	return shared.Peek(ctx, proxy.RouteLimiterName(r.Name), key, proxy.RouteLimit(r.RateLimit))
}

// rateLimit says what the matched route's rate_limit makes of the
// webhook: the route's one signature bucket is read in Redis without
// taking from it (past it, the gate answers 429 whatever the signature);
// a bucket per address or per token is named, not looked up (a capture
// carries neither the sender's address nor, for a signature, a token).
// check itself never counts the request.
func (w *webhookCheck) rateLimit(ctx context.Context) {
	r := w.d.route
	if r == nil || r.RateLimit == nil {
		return
	}
	rl := r.RateLimit
	fmt.Fprintf(w.out, "rate     rate_limit %s, burst %d per %s (check does not count this request)\n", rl.Rate, rl.Burst, rl.Key)
	switch {
	case rl.Key == config.RateKeyRemoteIP:
		w.ok("counted per client address (resolved through trusted_proxies), which a captured request does not carry: not looked up")
		return
	case rl.Key != config.RateKeySignatureRoute:
		w.ok("counted per the bearer token's %s: check --token reads that bucket", rl.Key)
		return
	case !w.cfg.Redis.On():
		w.ok("the route's one bucket is counted in each running gate's memory, which check cannot see (with a redis: block the shared bucket is read)")
		return
	}
	key, _ := proxy.SenderKey(rl.Key, nil, "")
	st, err := peekRoute(ctx, w.cfg, r, key)
	switch {
	case err != nil:
		w.no("the shared bucket in Redis could not be read: %v", err)
	case st.Tokens >= 1:
		w.ok("the route's one bucket has %.1f of %d requests left now (read in Redis without taking one)", st.Tokens, rl.Burst)
	default:
		w.limited = true
		w.no("the route's one bucket is past it now: the gate answers 429 rate_limited, however well signed; its next request is accepted in %ss", ratelimit.RetryAfter(st.Wait))
	}
}
