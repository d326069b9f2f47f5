package queue

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"
)

// recheckAfter is how long a message may wait, leased ahead, before its
// attempt asks the store whether it is still there: an operator's drop
// meanwhile is honoured (only an attempt that started within this of its
// lease can still go out after a drop).
const recheckAfter = 250 * time.Millisecond

// presence is a store that can tell whether a message is still stored.
type presence interface {
	Has(ctx context.Context, id string) (bool, error)
}

// droppedMeanwhile reports whether m, which waited leased ahead, was
// dropped since (a store that cannot say, or fails to, is trusted: the
// attempt goes ahead).
func (q *Queue) droppedMeanwhile(ctx context.Context, m *Message) bool {
	p, ok := q.store.(presence)
	if !ok || time.Since(m.leasedAt) < recheckAfter {
		return false
	}
	has, err := p.Has(ctx, m.ID)
	return err == nil && !has
}

// release gives leased messages that were never attempted back to the
// store, due at once, their attempts unchanged.
func (q *Queue) release(ctx context.Context, ms []*Message) {
	if len(ms) == 0 {
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	now := q.now()
	for _, m := range ms {
		m.Next = now
		if err := q.store.Retry(sctx, m); err != nil && !errors.Is(err, ErrNotFound) {
			q.log.Warn("queue: could not hand back a message leased ahead; it is due again after its lease", zap.String("route", m.Route),
				zap.String("id", m.ID), zap.Error(err))
		}
	}
}
