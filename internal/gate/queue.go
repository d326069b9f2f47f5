package gate

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/config"
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
	cfg    config.Queue         // the store's settings at open
	routes []queue.RouteOptions // fixed at New: a reload cannot change them
	every  time.Duration
	ctl    *listener.Listener // nil: no control socket (Redis store)
	cancel context.CancelFunc
	done   chan struct{}
	health atomic.Pointer[error] // nil: writable
	once   sync.Once             // of stop
}

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
	store, err := queue.OpenFromConfig(cfg) // a file store: its lock, or an error after 1s
	if err != nil {
		return nil, err
	}
	r := &queueRunner{log: log.Named("queue"), store: store, cfg: cfg.Queue, routes: queue.RoutesFromConfig(cfg), every: every}
	if r.every <= 0 {
		r.every = DefaultQueueCheckEvery
	}
	r.q, err = queue.New(store, queue.Options{Routes: r.routes, Target: target, Transport: rt,
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
	r.check(ctx)
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel, r.done = cancel, make(chan struct{})
	go func() {
		defer close(r.done)
		go r.watchHealth(runCtx)
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
	if err := r.store.Close(); err != nil {
		r.log.Warn("closing the queue store", zap.Error(err))
	}
}

// check asks the store whether it takes writes and records the answer.
func (r *queueRunner) check(ctx context.Context) {
	c, ok := r.store.(queue.Checker)
	if !ok {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r.setHealth(c.Check(cctx))
}

func (r *queueRunner) watchHealth(ctx context.Context) {
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.check(ctx)
		}
	}
}

func (r *queueRunner) setHealth(err error) {
	old := r.health.Load()
	switch {
	case err == nil && old != nil:
		r.log.Info("the queue store takes writes again")
		r.health.Store(nil)
	case err != nil && old == nil:
		r.log.Error("the queue store cannot be written: queued routes answer 503 and /readyz is not ready", zap.Error(err))
		r.health.Store(&err)
	case err != nil:
		r.health.Store(&err)
	}
}

// ready is the store's health: nil when it takes writes. A receiver that
// is down does not make the gate unready (storing is the point).
func (r *queueRunner) ready() error {
	if p := r.health.Load(); p != nil {
		return fmt.Errorf("queue store: %w", *p)
	}
	return nil
}

// Enqueue stores m unless the store is known not to take writes (then
// the sender gets 503 at once; nothing is acknowledged that a restart
// would lose).
func (r *queueRunner) Enqueue(ctx context.Context, m *queue.Message) error {
	if err := r.ready(); err != nil {
		return err
	}
	err := r.q.Enqueue(ctx, m)
	if errors.Is(err, queue.ErrUnavailable) {
		r.setHealth(err) // until the next check says otherwise
	}
	return err
}

// reloaded tells the queue what a new configuration changes: the
// receiver's URL is taken at once; the store and the queued routes'
// delivery settings are fixed until a restart (a queued route the queue
// does not know answers 503).
func (r *queueRunner) reloaded(log *zap.Logger, cfg *config.Config) {
	if r == nil {
		if cfg.QueuedRoutes() {
			log.Warn("queued routes were added by a reload: they answer 503 until a restart opens the queue store")
		}
		return
	}
	if u, err := url.Parse(cfg.Upstream.URL); err == nil && cfg.Upstream.URL != "" {
		r.q.SetTarget(u)
	}
	if cfg.Queue != r.cfg {
		log.Warn("queue.store and queue.max_bytes changes take effect only after a restart; the queue keeps its store")
	}
	if !reflect.DeepEqual(queue.RoutesFromConfig(cfg), r.routes) {
		log.Warn("queued routes or their delivery settings changed: they take effect only after a restart; until then a queued route the queue does not know answers 503, and the others keep their delivery settings")
	}
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
