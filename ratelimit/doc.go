// Package ratelimit counts requests per key in token buckets: in memory
// (golang.org/x/time/rate, at most a bounded number of keys, the least
// recently seen forgotten first) or, so that several replicas share one
// budget, in Redis with the GCRA of github.com/go-redis/redis_rate.
//
// A Keyed limiter is one family of buckets (one limit, one bucket per key).
// With a Redis it counts there; when Redis fails or is slow (each command
// is bounded by a timeout) it decides in memory instead, logs the outage
// once, counts each such decision (Options.OnFallback) and tries Redis
// again a second later, one request at a time: a Redis outage never
// refuses a request the limit would allow, at the price of each replica
// counting on its own until Redis is back.
//
//	shared := ratelimit.NewRedis(client, ratelimit.RedisOptions{Timeout: time.Second})
//	l := ratelimit.New("route:aftership", ratelimit.Limit{Rate: 100, Per: time.Second, Burst: 200},
//		ratelimit.Options{Shared: shared})
//	if ok, wait := l.Take(ctx, key); !ok {
//		// 429, Retry-After: wait
//	}
package ratelimit
