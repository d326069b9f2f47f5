package stack

import (
	"context"
	"fmt"

	"github.com/tokengate/tokengate/proxy"
	"github.com/tokengate/tokengate/queue"
)

// enqueuer is what queued routes store their requests with: the gate's
// queue, or without one an Enqueuer that refuses (503, nothing
// acknowledged) until a restart opens the store.
func (b *Builder) enqueuer() proxy.Enqueuer {
	if b.queue != nil {
		return b.queue
	}
	return noQueue{}
}

// noQueue refuses every message: no queue store is open.
type noQueue struct{}

// errNoQueue says why a queued route of a reloaded configuration refuses.
var errNoQueue = fmt.Errorf("%w: no queue store is open (queued routes were added by a reload; restart the gate to open it)", queue.ErrUnavailable)

// Enqueue refuses m.
func (noQueue) Enqueue(context.Context, *queue.Message) error { return errNoQueue }
