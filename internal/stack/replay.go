package stack

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

// ReplayStore returns the store s asks for, reusing the current one
// when it is the same. A new store is pending until the stack built with
// it serves (CommitReplay) or is dropped (AbortReplay): a reload that
// fails never closes the store the running stack uses. With
// Options.ReplayStore, that store is returned instead.
func (b *Builder) ReplayStore(s config.Signatures) (signature.Store, error) {
	if b.replayOverride != nil {
		return b.replayOverride, nil
	}
	key := fmt.Sprintf("%s|%d|%s", s.ReplayStore, s.ReplayMemoryEntries, s.StoreTimeout.D())
	if h := b.replay; h != nil && h.key == key {
		return h.store, nil
	}
	if h := b.pending; h != nil && h.key == key {
		return h.store, nil
	}
	b.abortReplayStore()
	h := &replayHolder{key: key}
	if s.RedisReplay() {
		redis.SetLogger(redisLog{b.log})
		r, err := signature.NewRedisStore(s.ReplayStore, signature.RedisOptions{Timeout: s.StoreTimeout.D(), Logger: b.log.Named("replay")})
		if err != nil {
			return nil, err
		}
		h.store, h.redis = r, r
	} else {
		h.store = signature.NewMemoryStore(signature.MemoryOptions{Entries: s.ReplayMemoryEntries})
	}
	b.pending = h
	return h.store, nil
}

// CommitReplay makes the pending store the current one once the stack
// built with it serves; the old Redis client is closed a minute later,
// when requests still on the old stack are done with it. The redis:
// block's client and the route rate limiters the build used are
// committed alike (shared.go).
func (b *Builder) CommitReplay() {
	b.commitShared()
	h := b.pending
	if h == nil {
		return
	}
	if old := b.replay; old != nil && old.redis != nil {
		time.AfterFunc(time.Minute, func() { _ = old.redis.Close() })
	}
	b.replay, b.pending = h, nil
}

// AbortReplay closes a store (and a redis: client) built for a stack
// that will not serve.
func (b *Builder) AbortReplay() {
	b.abortShared()
	b.abortReplayStore()
}

func (b *Builder) abortReplayStore() {
	if h := b.pending; h != nil && h.redis != nil {
		_ = h.redis.Close()
	}
	b.pending = nil
}

// Close closes the current replay store's Redis client and the redis:
// block's, if any (at shutdown, once no request uses them).
func (b *Builder) Close() {
	b.closeShared()
	if r := b.replay; r != nil && r.redis != nil {
		_ = r.redis.Close()
	}
}

// Signatures builds, for each route in order, its signed-webhook
// verifier (nil for routes without a signature policy); routes with
// replay protection share the replay store (ReplayStore).
func (b *Builder) Signatures(cfg *config.Config) ([]proxy.SignatureVerifier, error) {
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
				if store, err = b.ReplayStore(cfg.Signatures); err != nil {
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

// replayHealth is the health of the Redis replay store cfg's routes use
// (read without waiting on Redis), or nil when none does or the routes
// fail open (they serve, unchecked, while Redis is down).
func (b *Builder) replayHealth(cfg *config.Config) func() error {
	h := b.pending // the store this build uses: pending, else the current one
	if h == nil {
		h = b.replay
	}
	if h == nil || h.redis == nil || cfg.Signatures.ReplayFailOpen {
		return nil
	}
	for _, r := range cfg.Routes {
		if r.Signature != nil && r.Signature.ReplayOn() {
			return h.redis.Health
		}
	}
	return nil
}

// deliveryLease bounds how long a claimed message may stay in flight: the
// longest the gate takes to get the receiver's status (its body is read
// before the claim) plus the store's commands, and a margin in which a
// take that failed (Redis slow or paused) is retried in the background
// (at least every second) before other replicas may claim the message.
// Past it, a message whose gate crashed or lost the store is let go by
// itself, and one whose answer was lost may be delivered again.
func deliveryLease(cfg *config.Config) time.Duration {
	return cfg.Upstream.DialTimeout.D() + cfg.Upstream.ResponseTimeout.D() + 4*cfg.Signatures.StoreTimeout.D() + 10*time.Second
}

// redisLog sends go-redis's own messages (reconnects) to the log at debug
// level; failures reach the log through the requests they fail.
type redisLog struct{ log *zap.Logger }

// Printf logs one go-redis message at debug level.
func (l redisLog) Printf(_ context.Context, format string, v ...any) {
	l.log.Debug("redis: " + fmt.Sprintf(format, v...))
}
