package stack

import (
	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/verifier"
)

// Replay store kinds (ReplayStatus.Kind).
const (
	ReplayMemory = "memory"
	ReplayRedis  = "redis"
)

// ReplayStatus is the replay store a stack's signed routes use: its kind
// and, for Redis, its health. Never its URL (which may hold a password).
type ReplayStatus struct {
	// Kind is ReplayMemory or ReplayRedis; "" when no route keeps replay
	// ids.
	Kind string
	// FailOpen: the routes serve, unchecked, while Redis is down.
	FailOpen bool
	// Health is the Redis store's last background ping (never waits on
	// Redis); nil for the memory store.
	Health func() error
}

// Introspection is the introspection issuer's verifier, nil without one.
func (s *Stack) Introspection() *verifier.Introspection { return s.intro }

// Replay describes the replay store the stack's routes use.
func (s *Stack) Replay() ReplayStatus { return s.replay }

// replayStatus describes the store this build's routes use (the pending
// one, else the current one).
func (b *Builder) replayStatus(cfg *config.Config) ReplayStatus {
	used := false
	for _, r := range cfg.Routes {
		used = used || r.Signature != nil && r.Signature.ReplayOn()
	}
	h := b.pending
	if h == nil {
		h = b.replay
	}
	if !used || h == nil {
		return ReplayStatus{}
	}
	if h.redis != nil {
		return ReplayStatus{Kind: ReplayRedis, FailOpen: cfg.Signatures.ReplayFailOpen, Health: h.redis.Health}
	}
	return ReplayStatus{Kind: ReplayMemory}
}
