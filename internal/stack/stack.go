package stack

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/issuer"
	"github.com/tokengate/tokengate/proxy"
	"github.com/tokengate/tokengate/verifier"
)

// Stack is everything built from one configuration. A reload builds a new
// stack and swaps it in; requests in flight finish on the old one.
type Stack struct {
	cfg       *config.Config
	handler   http.Handler
	cache     *verifier.Cache
	jwts      []*verifier.JWT
	intro     *verifier.Introspection // the introspection issuer, nil without one
	embedded  *verifier.JWT           // the token endpoint's own issuer, nil without one
	tokens    *issuer.Server
	keys      []*issuer.Key
	transport *http.Transport
	verifyKey string // identity of the verification setup; equal → reuse
	stopWarm  context.CancelFunc
	// replayHealth reports the Redis replay store's health (nil: none).
	replayHealth func() error
	// replay describes the replay store the routes use (status page).
	replay ReplayStatus
	// shared describes the redis: block's server (status page).
	shared SharedRedisStatus
}

// Config is the configuration the stack was built from.
func (s *Stack) Config() *config.Config { return s.cfg }

// Handler serves the public listener: the proxy, and the token
// endpoint's paths when there is one.
func (s *Stack) Handler() http.Handler { return s.handler }

// Cache is the verification cache in front of every issuer, nil without a
// receiving side. Stacks that verify alike share it.
func (s *Stack) Cache() *verifier.Cache { return s.cache }

// Transport reaches the upstream, nil without a receiving side. Stacks
// with the same upstream settings share it.
func (s *Stack) Transport() *http.Transport { return s.transport }

// JWTs are the JWT issuers' verifiers in configuration order, without the
// embedded token endpoint's.
func (s *Stack) JWTs() []*verifier.JWT { return s.jwts }

// Embedded is the verifier of the token endpoint's own tokens, nil
// without a token endpoint.
func (s *Stack) Embedded() *verifier.JWT { return s.embedded }

// Verifier is what the proxy handler verifies with: the cache, refusing
// the tokens of a client the token endpoint no longer has.
func (s *Stack) Verifier() proxy.Verifier {
	var v proxy.Verifier = s.cache
	if te := s.cfg.TokenEndpoint; te != nil {
		v = currentClients(v, te)
	}
	return v
}

// WarmUp runs discovery and fetches every JWT issuer's keys, in the
// background, retrying with backoff until each succeeds or the stack is
// replaced or stopped: readiness must not wait for a webhook to arrive.
func (s *Stack) WarmUp(ctx context.Context, log *zap.Logger) {
	ctx, s.stopWarm = context.WithCancel(ctx)
	for _, j := range s.jwts {
		go func() {
			wait := 250 * time.Millisecond
			for attempt := 1; !j.Ready(); attempt++ {
				actx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err := j.Start(actx)
				cancel()
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					return
				}
				if attempt == 1 || attempt%10 == 0 {
					log.Warn("issuer not ready yet; requests for it get 503 until it is", zap.String("issuer", j.Name()), zap.Int("attempt", attempt), zap.Error(err))
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
				wait = min(wait*2, 30*time.Second)
			}
			j.Run(ctx) // revalidate the keys every jwks_refresh_interval
		}()
	}
}

// RefreshKeys refetches every JWT issuer's JWKS now (SIGHUP).
func (s *Stack) RefreshKeys(ctx context.Context, log *zap.Logger) {
	for _, j := range s.jwts {
		go func() {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := j.Refresh(rctx); err != nil {
				log.Warn("JWKS refetch on SIGHUP failed; the keys held stay in use", zap.String("issuer", j.Name()), zap.Error(err))
			}
		}()
	}
}

// Stop ends the stack's background work.
func (s *Stack) Stop() {
	if s.stopWarm != nil {
		s.stopWarm()
	}
}

// Ready reports why the stack cannot serve every route yet, or nil.
func (s *Stack) Ready() error {
	for _, j := range s.jwts {
		if !j.Ready() {
			return fmt.Errorf("issuer %s: keys not fetched yet", j.Name())
		}
	}
	if s.replayHealth == nil {
		return nil
	}
	return s.replayHealth()
}
