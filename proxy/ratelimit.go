package proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

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

// ErrNoSenderIdentity: the route counts requests per client_id or
// subject and the verified token names neither (403, not forwarded).
var ErrNoSenderIdentity = errors.New("the token names no client_id or sub, so the route's per-sender rate limit cannot be applied")

// DecisionNoSenderIdentity: a verified token refused because it names no
// identity the route's rate limit can count.
const DecisionNoSenderIdentity = "rate_limit_identity_missing"

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
// the resolved client address, never by anything the client wrote. A
// token that names no identity the limit can count is refused (never
// counted in a bucket every such token would share).
func (h *Handler) limit(r *http.Request, st *state) error {
	rl := st.route.limit
	if rl == nil {
		return nil
	}
	key, err := SenderKey(rl.key, st.principal, st.client)
	if err != nil {
		h.noSenderIdentity(st)
		return err
	}
	ok, wait := rl.l.Take(r.Context(), key)
	if ok {
		return nil
	}
	if o, isRL := h.obs.(RateLimitObserver); isRL {
		o.ObserveRateLimited(st.route.name)
	}
	return &rateLimitedError{wait: wait}
}

// noSenderIdentity logs a token refused for naming no sender: the
// issuer mints tokens the route's rate limit cannot count.
func (h *Handler) noSenderIdentity(st *state) {
	f := []zap.Field{zap.String("route", st.route.name)}
	if p := st.principal; p != nil {
		f = append(f, zap.String("issuer", p.Source), zap.String("token_id", p.TokenID()))
	}
	h.log.Warn("a verified token names no client_id or sub: refused, since the route's per-sender rate limit cannot count it", f...)
}

// Sender is the verified identity a client_id or subject limit (kind)
// counts p under: claim "client_id" or "sub" and its value. The route's
// key is used when the token has it, else the other identity (a token
// without a client id is counted per subject, and the other way round),
// in a bucket family of its own. ok is false when the token names
// neither: such a request is refused, never counted in one bucket shared
// by every such token.
func Sender(kind string, p *verifier.Principal) (claim, id string, ok bool) {
	if p == nil {
		return "", "", false
	}
	ids := [2]struct{ claim, id string }{{"client_id", p.ClientID}, {"sub", p.Subject}}
	if kind == config.RateKeySubject {
		ids[0], ids[1] = ids[1], ids[0]
	}
	for _, c := range ids {
		if c.id != "" {
			return c.claim, c.id, true
		}
	}
	return "", "", false
}

// SenderKey is the bucket key of a request on a route limited by kind
// (config.RateKey…): the verifying issuer's name, the identity's claim
// and its value (Sender), length-prefixed; the client address (an IPv6
// address by its /64, which one host holds whole); or "" for the route's
// one signature bucket. It fails with ErrNoSenderIdentity for a client_id
// or subject limit and a principal that names no sender.
func SenderKey(kind string, p *verifier.Principal, clientIP string) (string, error) {
	switch kind {
	case config.RateKeyClientID, config.RateKeySubject:
		claim, id, ok := Sender(kind, p)
		if !ok {
			return "", ErrNoSenderIdentity
		}
		return lengthPrefixed(p.Source, claim, id), nil
	case config.RateKeyRemoteIP:
		return clientKey(clientIP), nil
	}
	return "", nil
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
