// Package pinger keeps the last result of a ping repeated in the
// background, so that readiness and status pages read a server's health
// without waiting on it. It logs once when the server stops answering and
// once when it answers again.
package pinger

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Options configure a Watcher.
type Options struct {
	// Ping asks the server once; it is given a context bounded by
	// Timeout.
	Ping    func(context.Context) error
	Timeout time.Duration
	// Interval between pings; the first runs at once.
	Interval time.Duration
	// Name says what is pinged in errors ("replay store: Redis").
	Name string
	// Fails says how a failed ping reads after Name; default "does not
	// answer".
	Fails string
	// Checked runs the first ping before Start returns, so that Err is
	// known at once (not "not reached yet").
	Checked bool
	// Down is logged (warn) when the server stops answering, Up (info)
	// when it answers again.
	Down, Up string
	Log      *zap.Logger
}

// Watcher pings in the background until Stop.
type Watcher struct {
	o          Options
	log        *zap.Logger
	notChecked error
	mu         sync.Mutex
	err        error
	stop       context.CancelFunc
	done       chan struct{}
}

// Start begins the pings. Until the first answers, Err says the server
// was not reached yet.
func Start(o Options) *Watcher {
	ctx, stop := context.WithCancel(context.Background())
	if o.Fails == "" {
		o.Fails = "does not answer"
	}
	w := &Watcher{o: o, log: o.Log, notChecked: fmt.Errorf("%s not reached yet", o.Name), stop: stop, done: make(chan struct{})}
	w.err = w.notChecked
	if w.log == nil {
		w.log = zap.NewNop()
	}
	first := time.Duration(0)
	if o.Checked {
		w.ping(ctx)
		first = o.Interval
	}
	go func() {
		defer close(w.done)
		t := time.NewTimer(first)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			w.ping(ctx)
			t.Reset(o.Interval)
		}
	}()
	return w
}

// ping asks once and records the answer.
func (w *Watcher) ping(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, w.o.Timeout)
	err := w.o.Ping(pctx)
	cancel()
	if ctx.Err() != nil {
		return
	}
	w.Observe(err)
}

// Observe records a result seen outside the pings (a write that failed)
// until the next ping, logging a change as a ping would.
func (w *Watcher) Observe(err error) {
	if w == nil {
		return
	}
	if err != nil {
		err = fmt.Errorf("%s %s: %w", w.o.Name, w.o.Fails, err)
	}
	w.mu.Lock()
	was := w.err
	w.err = err
	w.mu.Unlock()
	switch {
	case err != nil && (was == nil || errors.Is(was, w.notChecked)):
		w.log.Warn(w.o.Down, zap.Error(err))
	case err == nil && was != nil && !errors.Is(was, w.notChecked):
		w.log.Info(w.o.Up)
	}
}

// Err is the last ping's result: nil when the server answered.
func (w *Watcher) Err() error {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Stop ends the pings and waits for the one running (cancelled: at once).
func (w *Watcher) Stop() {
	if w == nil {
		return
	}
	w.stop()
	<-w.done
}
