package signature

import (
	"context"
	"sync/atomic"
	"time"
)

// Receipt is a verified message, claimed in the store. Settle it (or Keep
// it) once the receiver's answer is known, or known to be lost.
type Receipt struct {
	store   Store
	ticket  Ticket
	ttl     time.Duration
	settled atomic.Bool
	// StoreErr is set when the store failed and the route fails open: the
	// message was not checked for replays.
	StoreErr error
	// MessageID names the message by what its signature covers (the
	// replay key: route, scheme and signed values, hashed; unpadded
	// base64url): two messages share it only if they are the same signed
	// message, whatever unsigned headers (X-GitHub-Delivery) say.
	MessageID string
}

// Claimed reports whether the receipt holds a claim in a store, to be
// settled.
func (r *Receipt) Claimed() bool { return r != nil && r.store != nil }

// Settle records the receiver's answer: a delivered message (2xx) is
// taken and remembered for the replay window, so a copy is answered as a
// duplicate; any other is released, so the sender's retry is delivered.
// Only the first call of Settle or Keep counts.
func (r *Receipt) Settle(ctx context.Context, delivered bool) error {
	if !r.Claimed() || !r.settled.CompareAndSwap(false, true) {
		return nil
	}
	if delivered {
		return r.store.Take(ctx, r.ticket, r.ttl)
	}
	return r.store.Release(ctx, r.ticket)
}

// Keep settles a claim whose outcome is unknown (the whole message
// reached the receiver, whose answer never came back): it is neither
// taken nor released, and stays in flight until its lease ends, so a copy
// meanwhile is answered ErrInFlight; after the lease the sender's retry
// is delivered again (at least once, never lost). It reports whether this
// call settled the claim (only the first call of Settle or Keep counts).
func (r *Receipt) Keep() bool {
	return r.Claimed() && r.settled.CompareAndSwap(false, true)
}

// LeaseEnds is when the claim ends by itself unless it is settled (zero
// without a claim).
func (r *Receipt) LeaseEnds() time.Time {
	if !r.Claimed() {
		return time.Time{}
	}
	return r.ticket.Until
}
