package main

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// warmUp runs discovery and fetches every JWT issuer's keys, in the
// background, retrying with backoff until each succeeds or the stack is
// replaced or stopped: readiness must not wait for a webhook to arrive.
func (s *stack) warmUp(ctx context.Context, log *zap.Logger) {
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

// refreshKeys refetches every JWT issuer's JWKS now (SIGHUP).
func (s *stack) refreshKeys(ctx context.Context, log *zap.Logger) {
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

// stop ends the stack's background work.
func (s *stack) stop() {
	if s.stopWarm != nil {
		s.stopWarm()
	}
}

// ready reports why the stack cannot serve every route yet, or nil.
func (s *stack) ready() error {
	for _, j := range s.jwts {
		if !j.Ready() {
			return fmt.Errorf("issuer %s: keys not fetched yet", j.Name())
		}
	}
	return s.replayReady()
}
