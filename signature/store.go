package signature

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"
)

// ErrStoreFull: the in-memory store holds as many messages of a route as
// it may, none of them past its window. The new message is refused (503,
// the sender retries later) rather than an old one forgotten, which would
// let that one be replayed.
var ErrStoreFull = errors.New("replay store full")

// State is what a store knows of a message.
type State int

// A message is new (now claimed by the caller), in flight (claimed by
// another request that has not settled it) or taken (delivered: the
// receiver answered 2xx).
const (
	Fresh State = iota
	InFlight
	Taken
)

// Ticket names one claim of one message.
type Ticket struct {
	// Scope is the route; the memory store bounds the messages it holds
	// per scope, so one route's traffic cannot crowd out another's.
	Scope string
	// Key is the message's replay key (already scoped by route).
	Key string
	// Owner is random and fresh for each claim: a store that finds its
	// own owner on a key (a retried command that had already run) counts
	// the claim as won, and only the owner may release or take the key.
	Owner string
	// Until is when the claim's lease ends: a store that keeps trying to
	// release a claim it could not release at once gives up then (the
	// claim is over by itself).
	Until time.Time
}

// Store remembers messages for replay protection. It must be safe for
// concurrent use and shared by every replica that serves one receiver.
// Each method is idempotent, so a command retried after a lost reply
// cannot change its outcome.
type Store interface {
	// Claim records the message as in flight for lease, owned by t.Owner,
	// unless the store holds it already; it returns Fresh (the caller now
	// owns it, also when the store finds t.Owner there), InFlight or
	// Taken.
	Claim(ctx context.Context, t Ticket, lease time.Duration) (State, error)
	// Take marks the message delivered and keeps it at least ttl, whoever
	// holds it (the lease may have run out): a delivered message is
	// always recorded.
	Take(ctx context.Context, t Ticket, ttl time.Duration) error
	// Release forgets the message if t.Owner still holds it in flight: it
	// was not delivered (or its claim's outcome is unknown), and the
	// sender's retry must be. A store that cannot release it at once keeps
	// trying, in the background, until t.Until.
	Release(ctx context.Context, t Ticket) error
}

// newOwner is a random claim owner.
func newOwner() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b[:])
}
