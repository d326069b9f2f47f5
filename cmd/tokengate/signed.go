package main

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/proxy"
	"github.com/tokengate/tokengate/signature"
)

// replayHolder keeps the replay store across reloads: the same memory
// store (and the ids it holds), or the same Redis client while the URL
// and timeout are unchanged.
type replayHolder struct {
	key   string
	store signature.Store
	redis *signature.RedisStore
}

// replayStore returns the store cfg asks for, reusing the current one
// when it is the same.
func (b *builder) replayStore(s config.Signatures) (signature.Store, error) {
	key := fmt.Sprintf("%s|%d|%s", s.ReplayStore, s.ReplayMemoryEntries, s.StoreTimeout.D())
	if h := b.replay; h != nil && h.key == key {
		return h.store, nil
	}
	h := &replayHolder{key: key}
	if s.RedisReplay() {
		redis.SetLogger(redisLog{b.log})
		r, err := signature.NewRedisStore(s.ReplayStore, signature.RedisOptions{Timeout: s.StoreTimeout.D()})
		if err != nil {
			return nil, err
		}
		h.store, h.redis = r, r
	} else {
		h.store = signature.NewMemoryStore(signature.MemoryOptions{Entries: s.ReplayMemoryEntries})
	}
	if old := b.replay; old != nil && old.redis != nil {
		// Requests still on the old stack may use it for a moment.
		time.AfterFunc(time.Minute, func() { _ = old.redis.Close() })
	}
	b.replay = h
	return h.store, nil
}

// signatureVerifiers builds, for each route in order, its signed-webhook
// verifier (nil for routes without a signature policy).
func (b *builder) signatureVerifiers(cfg *config.Config) ([]proxy.SignatureVerifier, error) {
	out := make([]proxy.SignatureVerifier, len(cfg.Routes))
	var store signature.Store
	for i, r := range cfg.Routes {
		sig := r.Signature
		if sig == nil {
			continue
		}
		o := signature.Options{
			Scheme: sig.Scheme, Route: r.Name, Secrets: sig.AllSecrets(), Tolerance: sig.Tolerance.D(),
			FailOpen: cfg.Signatures.ReplayFailOpen, Lease: deliveryLease(cfg),
		}
		if sig.ReplayOn() {
			if store == nil {
				var err error
				if store, err = b.replayStore(cfg.Signatures); err != nil {
					return nil, err
				}
			}
			o.Store = store
		}
		v, err := signature.New(o)
		if err != nil {
			return nil, fmt.Errorf("routes[%d].signature: %w", i, err)
		}
		out[i] = v
	}
	return out, nil
}

// deliveryLease bounds how long a claimed message may stay in flight: the
// longest the gate takes to get the receiver's status (its body is read
// before the claim) plus the store's commands, and a margin. Past it, a
// message whose gate crashed or lost the store is let go by itself.
func deliveryLease(cfg *config.Config) time.Duration {
	return cfg.Upstream.DialTimeout.D() + cfg.Upstream.ResponseTimeout.D() + 4*cfg.Signatures.StoreTimeout.D() + 10*time.Second
}

// redisLog sends go-redis's own messages (reconnects) to the log at debug
// level; failures reach the log through the requests they fail.
type redisLog struct{ log *zap.Logger }

func (l redisLog) Printf(_ context.Context, format string, v ...any) {
	l.log.Debug("redis: " + fmt.Sprintf(format, v...))
}

// describeAuth summarizes what a route checks: its token policy, its
// signature policy, or both.
func describeAuth(r config.Route) string {
	sig := ""
	if s := r.Signature; s != nil {
		sig = fmt.Sprintf("signature=%s tolerance=%s replay=%t", s.Scheme, s.Tolerance.D(), s.ReplayOn())
	}
	switch r.AuthMode() {
	case config.AuthSignature:
		return sig
	case config.AuthAny:
		return describeRequire(r.Require) + " OR " + sig
	case config.AuthAll:
		return describeRequire(r.Require) + " AND " + sig
	}
	return describeRequire(r.Require)
}

// checkReplayStore pings a Redis replay store once and checks every
// signature route's secrets decode for its scheme.
func checkReplayStore(ctx context.Context, cfg *config.Config) []string {
	var problems []string
	b := &builder{log: zap.NewNop()}
	for i, r := range cfg.Routes {
		if s := r.Signature; s != nil && s.Scheme != "" && len(s.AllSecrets()) > 0 {
			if _, err := signature.New(signature.Options{Scheme: s.Scheme, Secrets: s.AllSecrets()}); err != nil {
				problems = append(problems, fmt.Sprintf("routes[%d].signature: %v", i, err))
			}
		}
	}
	if !cfg.Signatures.RedisReplay() {
		return problems
	}
	st, err := b.replayStore(cfg.Signatures)
	if err != nil {
		return append(problems, fmt.Sprintf("signatures.replay_store: %v", err))
	}
	rs := st.(*signature.RedisStore)
	defer rs.Close()
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if err := rs.Ping(ctx); err != nil {
		problems = append(problems, fmt.Sprintf("signatures.replay_store: Redis does not answer: %v", err))
	}
	return problems
}
