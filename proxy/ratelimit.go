package proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/ratelimit"
	"github.com/tokengate/tokengate/verifier"
)

// RateLimiter counts one route's requests per sender (routes[].rate_limit);
// *ratelimit.Keyed implements it.
type RateLimiter interface {
	// Take takes one token from key's bucket; when none is left it says
	// how long until one will be.
	Take(ctx context.Context, key string) (bool, time.Duration)
}

var _ RateLimiter = (*ratelimit.Keyed)(nil)

// RateLimitObserver, when the Observer also implements it, counts the
// requests a route's rate limit refused.
type RateLimitObserver interface {
	ObserveRateLimited(route string)
}

// DecisionRateLimited: a verified sender past its route's rate limit
// (429, not forwarded).
const DecisionRateLimited = "rate_limited"

// errRateLimited: the sender is past the route's rate limit.
var errRateLimited = errors.New("rate limit exceeded")

// rateLimitedError carries how long until the sender's next request is
// allowed (the Retry-After).
type rateLimitedError struct{ wait time.Duration }

func (e *rateLimitedError) Error() string {
	return fmt.Sprintf("%v; retry after %v", errRateLimited, e.wait.Round(time.Millisecond))
}

func (e *rateLimitedError) Unwrap() error { return errRateLimited }

// routeLimit is a compiled routes[].rate_limit.
type routeLimit struct {
	key string // config.RateKey…
	l   RateLimiter
}

// RouteLimiterName is the bucket family of a route's rate limit: one per
// route name, whatever the limit (a reload that keeps the name keeps the
// buckets, in Redis).
func RouteLimiterName(route string) string { return "route|" + route }

// compileLimits gives each route with a rate_limit its limiter: the one
// given (limits[i]) or, without one, an in-memory limiter of its own.
func compileLimits(cfg *config.Config, routes []*route, limits []RateLimiter) {
	for i, r := range cfg.Routes {
		rl := r.RateLimit
		if rl == nil {
			continue
		}
		var l RateLimiter
		if i < len(limits) && limits[i] != nil {
			l = limits[i]
		} else {
			l = ratelimit.New(RouteLimiterName(r.Name), RouteLimit(rl), ratelimit.Options{})
		}
		routes[i].limit = &routeLimit{key: rl.Key, l: l}
	}
}

// RouteLimit is a rate_limit block as a ratelimit.Limit.
func RouteLimit(rl *config.RouteRateLimit) ratelimit.Limit {
	return ratelimit.Limit{Rate: rl.Rate.N, Per: rl.Rate.Per, Burst: rl.Burst}
}

// limit takes a token for the request's sender on its route, once the
// request is verified: the bucket is chosen by the verified identity or
// the resolved client address, never by anything the client wrote.
func (h *Handler) limit(r *http.Request, st *state) error {
	rl := st.route.limit
	if rl == nil {
		return nil
	}
	key := SenderKey(rl.key, st.principal, h.fwd.ClientIP(r))
	ok, wait := rl.l.Take(r.Context(), key)
	if ok {
		return nil
	}
	if o, isRL := h.obs.(RateLimitObserver); isRL {
		o.ObserveRateLimited(st.route.name)
	}
	return &rateLimitedError{wait: wait}
}

// SenderKey is the bucket key of a request on a route limited by kind
// (config.RateKey…): the verifying issuer's name and the token's client
// id or subject, length-prefixed; the client address (an IPv6 address by
// its /64, which one host holds whole); or "" for the route's one
// signature bucket. A request without a verified principal where one is
// needed shares a bucket with every such request.
func SenderKey(kind string, p *verifier.Principal, clientIP string) string {
	switch kind {
	case config.RateKeyClientID, config.RateKeySubject:
		if p == nil {
			return "\x00unverified"
		}
		id := p.ClientID
		if kind == config.RateKeySubject {
			id = p.Subject
		}
		return lengthPrefixed(p.Source, id)
	case config.RateKeyRemoteIP:
		return clientKey(clientIP)
	}
	return ""
}

// lengthPrefixed joins parts so that no two lists give one string.
func lengthPrefixed(parts ...string) string {
	var b []byte
	for _, s := range parts {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return string(b)
}
