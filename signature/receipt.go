package signature

import (
	"context"
	"sync"
	"time"
)

// Receipt is a verified message, claimed in the store. Settle it once the
// receiver's answer is known.
type Receipt struct {
	store  Store
	ticket Ticket
	ttl    time.Duration
	once   sync.Once
	// StoreErr is set when the store failed and the route fails open: the
	// message was not checked for replays.
	StoreErr error
}

// Settle records the receiver's answer: a delivered message (2xx) is
// taken and remembered for the replay window, so a copy is answered as a
// duplicate; any other is released, so the sender's retry is delivered.
// Only the first call counts.
func (r *Receipt) Settle(ctx context.Context, delivered bool) error {
	if r == nil || r.store == nil {
		return nil
	}
	var err error
	r.once.Do(func() {
		if delivered {
			err = r.store.Take(ctx, r.ticket, r.ttl)
		} else {
			err = r.store.Release(ctx, r.ticket)
		}
	})
	return err
}
