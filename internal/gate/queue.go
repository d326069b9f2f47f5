package gate

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/pinger"
	"github.com/tokengate/tokengate/internal/telemetry"
	"github.com/tokengate/tokengate/listener"
	"github.com/tokengate/tokengate/queue"
)

// DefaultQueueCheckEvery is how often the queue store's health is checked
// for /readyz.
const DefaultQueueCheckEvery = 5 * time.Second

// queueRunner is the delivery queue of a gate started with a queued
// route: its store (opened once, kept across reloads), the worker, the
// operators' control socket, and the store's health for /readyz.
type queueRunner struct {
	log    *zap.Logger
	store  queue.Store
	q      *queue.Queue
	cfg    config.Queue // the store's settings at open
	every  time.Duration
	ctl    *listener.Listener // nil: no control socket (Redis store)
	cancel context.CancelFunc
	done   chan struct{}
	health *pinger.Watcher // the store's Check in the background; nil: none
	once   sync.Once       // of stop
}

// openSlowAfter is how long opening the queue store may take before the
// gate says it waits: on a disk that hangs, bbolt's open waits with it,
// and the gate would otherwise neither listen nor log (an outside attack).
var openSlowAfter = 5 * time.Second

// openQueue opens cfg's queue store and builds the queue over it; nil
// when no route is queued. rt sends every attempt.
func openQueue(cfg *config.Config, rt http.RoundTripper, m *telemetry.Metrics, tr *telemetry.Tracing, log *zap.Logger, every time.Duration) (*queueRunner, error) {
	if !cfg.QueuedRoutes() {
		return nil, nil
	}
	target, err := url.Parse(cfg.Upstream.URL)
	if err != nil {
		return nil, fmt.Errorf("upstream.url: %w", err)
	}
	slow := time.AfterFunc(openSlowAfter, func() {
		log.Warn("the queue store is still opening: its disk (or Redis) does not answer; the gate listens once it opens", zap.Duration("waited", openSlowAfter))
	})
	store, err := queue.OpenFromConfig(cfg) // a file store: its lock, or an error after 1s
	slow.Stop()
	if err != nil {
		return nil, err
	}
	r := &queueRunner{log: log.Named("queue"), store: store, cfg: cfg.Queue, every: every}
	if r.every <= 0 {
		r.every = DefaultQueueCheckEvery
	}
	r.q, err = queue.New(store, queue.Options{Routes: queue.RoutesFromConfig(cfg), Target: target, Transport: rt,
		Observer: m, Logger: r.log, Grace: cfg.ShutdownGrace.D(), Tracer: tr.Provider(), Propagator: tr.Propagator()})
	if err != nil {
		store.Close()
		return nil, err
	}
	return r, nil
}

// start checks the store once, then runs the worker, the health checks
// and the control socket until stop.
func (r *queueRunner) start(ctx context.Context, timeouts listener.Timeouts) {
	if c, ok := r.store.(queue.Checker); ok {
		r.health = pinger.Start(pinger.Options{Ping: c.Check, Timeout: 5 * time.Second, Interval: r.every, Checked: true,
			Name: "queue store", Fails: "cannot be written", Log: r.log,
			Down: "the queue store cannot be written: queued routes answer 503 and /readyz is not ready",
			Up:   "the queue store takes writes again"})
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel, r.done = cancel, make(chan struct{})
	go func() {
		defer close(r.done)
		_ = r.q.Run(runCtx)
	}()
	dir, ok := r.cfg.FileDir()
	if !ok {
		return
	}
	l, err := queue.ListenControl(dir)
	if err == nil {
		r.ctl, err = listener.New(listener.Options{Name: "queue control", Listener: l, Handler: queue.ControlHandler(r.q),
			Timeouts: timeouts, Logger: r.log})
	}
	if err != nil {
		r.log.Warn("the queue's control socket is off: `tokengate queue` cannot reach this gate", zap.Error(err))
		return
	}
	r.ctl.Start()
}

// stop ends the worker (attempts in flight get shutdown_grace), closes
// the control socket, then the store. Call after the public listener
// stopped: nothing enqueues any more.
func (r *queueRunner) stop() { r.once.Do(r.close) }

// stopBy is stop, waited for until deadline at most: a store whose disk
// does not answer holds its commit, and its Close, for as long as the
// disk does. It reports whether the queue stopped; if not, the process
// may exit anyway: what the held commit writes was not acknowledged, and
// the store recovers its file at the next start as after a crash.
func (r *queueRunner) stopBy(deadline time.Time) bool {
	done := make(chan struct{})
	go func() { r.stop(); close(done) }()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		r.log.Warn("the queue store did not close in time (its disk does not answer); exiting without it: nothing acknowledged is lost")
		return false
	}
}

// beginStop tells the worker to take no new deliveries; its attempts in
// flight get their grace while the public listener drains, so a shutdown
// takes one shutdown_grace, not two. stop waits for it.
func (r *queueRunner) beginStop() {
	if r.cancel != nil {
		r.cancel()
	}
}

func (r *queueRunner) close() {
	if r.cancel != nil {
		r.cancel()
		<-r.done
	}
	if r.ctl != nil {
		_ = r.ctl.Close()
	}
	r.health.Stop() // a check never meets the store's Close
	if err := r.store.Close(); err != nil {
		r.log.Warn("closing the queue store", zap.Error(err))
	}
}

// ready is the store's health: nil when it takes writes. A receiver that
// is down does not make the gate unready (storing is the point).
func (r *queueRunner) ready() error { return r.health.Err() }

// Enqueue stores m unless the store is known not to take writes (then
// the sender gets 503 at once; nothing is acknowledged that a restart
// would lose).
func (r *queueRunner) Enqueue(ctx context.Context, m *queue.Message) error {
	if err := r.ready(); err != nil {
		return err
	}
	err := r.q.Enqueue(ctx, m)
	if speaksForReadiness(m, err) {
		r.health.Observe(err) // until the next check says otherwise
	}
	return err
}

// speaksForReadiness reports whether a failed store makes the gate
// unready until the next check: a store that is unavailable, for a
// message of a size readiness speaks for (queue.ProbeMax). A larger one
// that does not fit gets its 503 alone: an outside attack replayed one
// captured large webhook every second and kept every queued message of
// every sender refused on a disk that had room for them.
func speaksForReadiness(m *queue.Message, err error) bool {
	return errors.Is(err, queue.ErrUnavailable) && len(m.Body) <= queue.ProbeMax
}

// reloaded tells the queue what a new configuration changes: the
// receiver's URL and the queued routes' delivery settings are taken at
// once (a route no longer queued keeps delivering what it stored); the
// store is fixed until a restart.
func (r *queueRunner) reloaded(log *zap.Logger, cfg *config.Config) {
	if r == nil {
		return
	}
	if u, err := url.Parse(cfg.Upstream.URL); err == nil && cfg.Upstream.URL != "" {
		r.q.SetTarget(u)
	}
	if cfg.Queue != r.cfg && cfg.QueuedRoutes() {
		log.Warn("queue.store and queue.max_bytes changes take effect only after a restart; the queue keeps its store")
	}
	if err := r.q.SetRoutes(queue.RoutesFromConfig(cfg)); err != nil { // validated with the configuration
		log.Error("the queued routes of the reloaded configuration were not applied; the queue keeps the last ones", zap.Error(err))
	}
}

// openQueueOnReload opens the queue store when a reloaded configuration
// queues a route and none is open yet, and starts it; an error (the
// store cannot be opened) fails the reload, so the old configuration
// keeps serving rather than answering 503 on the new queued routes.
func (g *Gate) openQueueOnReload(ctx context.Context, cfg *config.Config) error {
	if g.queue.Load() != nil || !cfg.QueuedRoutes() {
		return nil
	}
	q, err := openQueue(cfg, upstreamTransport{g}, g.m, g.tr, g.log, g.queueEvery)
	if err != nil {
		return err
	}
	g.queueMu.Lock()
	defer g.queueMu.Unlock()
	if g.draining.Load() {
		q.stop()
		return errors.New("shutting down")
	}
	g.queue.Store(q)
	q.start(ctx, g.timeouts)
	g.log.Info("queue store opened for the queued routes of the reloaded configuration", zap.String("store", config.RedactedURL(cfg.Queue.Store)))
	return nil
}

// queueRef hands a queued route's messages to the gate's queue, opened at
// New or by a reload.
type queueRef struct{ g *Gate }

// errNoQueue says why a queued route refuses: no store is open (a reload
// that failed to open one was refused, so this is a bug's safety net).
var errNoQueue = fmt.Errorf("%w: no queue store is open", queue.ErrUnavailable)

// Enqueue stores m in the open queue.
func (r queueRef) Enqueue(ctx context.Context, m *queue.Message) error {
	q := r.g.queue.Load()
	if q == nil {
		return errNoQueue
	}
	return q.Enqueue(ctx, m)
}

// upstreamTransport sends the queue's attempts through the current
// stack's upstream transport, so a reload's upstream settings apply.
type upstreamTransport struct{ g *Gate }

// RoundTrip sends r with the current stack's transport.
func (u upstreamTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t := u.g.cur.Load().Transport()
	if t == nil {
		return nil, errors.New("no upstream is configured")
	}
	return t.RoundTrip(r)
}
