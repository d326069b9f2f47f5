package gate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/config"
)

// Shutdown stops accepting connections at once, lets requests in flight
// finish within the configuration's shutdown_grace (and ctx), waits for a
// refresh-token refresh at the vendor so its rotated token is stored,
// stops the delivery queue (its attempts in flight get shutdown_grace
// beside the public drain, not after it; what is left stays stored; a
// store whose disk does not answer is left config.ShutdownOverrun past
// the grace, its unfinished commit unacknowledged), then
// stops the admin listener, closes the replay store and exports the spans
// still queued (at most config.ShutdownOverrun past the grace). Later calls
// return the first call's result. An error says what was cut off.
func (g *Gate) Shutdown(ctx context.Context) error {
	g.shutdownOnce.Do(func() { g.shutdownErr = g.stop(ctx) })
	return g.shutdownErr
}

func (g *Gate) stop(ctx context.Context) error {
	if g.stopWatch != nil {
		g.stopWatch()
	}
	g.cur.Load().Stop()
	g.queueMu.Lock() // a reload opening a queue store now sees draining
	g.draining.Store(true)
	q := g.queue.Load()
	g.queueMu.Unlock()
	if q != nil {
		q.beginStop() // deliveries wind down beside the public drain
	}
	grace := g.cur.Load().Config().ShutdownGrace.D()
	g.log.Info("shutting down: no new connections, draining requests in flight", zap.Duration("grace", grace))
	graceEnd := time.Now().Add(grace)
	ctx, cancel := context.WithDeadline(ctx, graceEnd)
	defer cancel()
	egressDone := make(chan struct{})
	go func() { g.eg.shutdown(ctx); close(egressDone) }()
	var err error
	if g.pubLn != nil {
		err = g.pubLn.Shutdown(ctx) // what is still in flight at the deadline is cut off
	}
	<-egressDone
	queueStopped := true
	if q != nil { // after the public listener: nothing enqueues any more
		queueStopped = q.stopBy(graceEnd.Add(config.ShutdownOverrun))
	}
	if g.adminLn != nil {
		_ = g.adminLn.Close()
	}
	if t := g.cur.Load().Transport(); t != nil {
		t.CloseIdleConnections()
	}
	g.b.Close()
	g.stopTracing(graceEnd) // after the queue: its last attempts' spans are exported
	if err == nil && !queueStopped {
		err = errors.New("the queue store did not close: its disk does not answer")
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("requests still in flight after the %v grace period were cut off", grace)
		}
		return err
	}
	g.log.Info("stopped cleanly")
	return nil
}
