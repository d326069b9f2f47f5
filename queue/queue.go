package queue

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

// Route defaults, used for zero fields of RouteOptions.
const (
	DefaultMaxAttempts    = 25
	DefaultMaxAge         = 72 * time.Hour
	DefaultBackoffInitial = time.Second
	DefaultBackoffMax     = 10 * time.Minute
	DefaultConcurrency    = 4
	DefaultTimeout        = 30 * time.Second
	// DefaultPoll is how often a route with nothing due looks again.
	DefaultPoll = time.Second
	// DefaultStatsEvery is how often stored counts go to the Observer.
	DefaultStatsEvery = 15 * time.Second
)

// Outcomes of one attempt, for Observer.ObserveAttempt.
const (
	OutcomeDelivered = "delivered" // the receiver took it
	OutcomeRetry     = "retry"     // not taken; tried again later
	OutcomeDead      = "dead"      // not taken; now a dead letter
	OutcomeAborted   = "aborted"   // cut short by shutdown; left stored, not counted
)

// Observer receives the queue's metrics. Labels are bounded: route names
// from the configuration and the Outcome constants.
type Observer interface {
	// ObserveStored reports one route's stored messages after every
	// stats pass (every StatsEvery); oldest is the age of its oldest
	// pending message (0: none).
	ObserveStored(s RouteStats, oldest time.Duration)
	// ObserveAttempt counts one attempt by its outcome.
	ObserveAttempt(route, outcome string)
}

// RouteOptions are one queued route's delivery settings.
type RouteOptions struct {
	// Name is the route's name (config routes[].name).
	Name string
	// Success are the receiver's answers that count as taken; default 2xx.
	Success Codes
	// RetryOn are 4xx answers retried although such an answer normally
	// makes a dead letter at once (408, 409, 425 and 429 always are).
	RetryOn Codes
	// MaxAttempts, then the message is a dead letter.
	MaxAttempts int
	// MaxAge after arrival (or after an operator's retry), then the
	// message is a dead letter.
	MaxAge time.Duration
	// BackoffInitial doubles with every failed attempt up to BackoffMax;
	// each wait is drawn between half of it and all of it. A receiver's
	// Retry-After on 429 or 503 wins.
	BackoffInitial, BackoffMax time.Duration
	// Concurrency bounds this route's attempts in flight (per replica).
	Concurrency int
	// Timeout bounds one attempt, answer included.
	Timeout time.Duration
}

func (ro *RouteOptions) defaults() {
	if len(ro.Success) == 0 {
		ro.Success = Codes{"2xx"}
	}
	setIfZero(&ro.MaxAttempts, DefaultMaxAttempts)
	setIfZero(&ro.MaxAge, DefaultMaxAge)
	setIfZero(&ro.BackoffInitial, DefaultBackoffInitial)
	setIfZero(&ro.BackoffMax, max(DefaultBackoffMax, ro.BackoffInitial))
	setIfZero(&ro.Concurrency, DefaultConcurrency)
	setIfZero(&ro.Timeout, DefaultTimeout)
}

func setIfZero[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// Options configure a Queue.
type Options struct {
	// Routes are the queued routes.
	Routes []RouteOptions
	// Target is the receiver's URL (config upstream.url): a message's
	// path is joined to it as the reverse proxy does.
	Target *url.URL
	// Transport sends every attempt (the gate's upstream transport).
	// Default http.DefaultTransport.
	Transport http.RoundTripper
	// Observer receives metrics; nil: none.
	Observer Observer
	// Logger; nil: none.
	Logger *zap.Logger
	// Now is the clock deciding what is due, backoff and max_age;
	// default time.Now.
	Now func() time.Time
	// Grace is how long Run lets attempts in flight finish after its
	// context ends; the rest are cut short and left stored. Default 10s.
	Grace time.Duration
	// Poll and StatsEvery: see DefaultPoll and DefaultStatsEvery.
	Poll, StatsEvery time.Duration
	// Tracer, when set, makes each attempt a span that begins a trace of
	// its own, linked to the request that stored the message
	// (Message.Trace); Propagator then sends the receiver the attempt's
	// trace context in place of any stored one. nil: no spans, and the
	// stored headers go as they are.
	Tracer     trace.TracerProvider
	Propagator propagation.TextMapPropagator

	// jitter, for tests, returns a number in [0, 1).
	jitter func() float64
}

// Queue stores verified messages and delivers them to the receiver until
// it takes them.
type Queue struct {
	store  Store
	routes atomic.Pointer[routeSet]
	target atomic.Pointer[url.URL]
	rt     http.RoundTripper
	obs    Observer
	log    *zap.Logger
	now    func() time.Time
	grace  time.Duration
	poll   time.Duration
	every  time.Duration
	jitter func() float64
	tp     trace.TracerProvider          // nil: tracing off
	prop   propagation.TextMapPropagator // nil: tracing off

	mu  sync.Mutex // of route changes and run
	run *running   // set while Run runs
}

// New returns a Queue over store; it delivers nothing until Run.
func New(store Store, o Options) (*Queue, error) {
	if store == nil || o.Target == nil {
		return nil, errors.New("queue: a store and a target are required")
	}
	q := &Queue{store: store, rt: o.Transport, obs: o.Observer,
		log: o.Logger, now: o.Now, grace: o.Grace, poll: o.Poll, every: o.StatsEvery, jitter: o.jitter}
	if o.Tracer != nil && o.Propagator != nil {
		q.tp, q.prop = o.Tracer, o.Propagator
	}
	routes, err := checkRoutes(o.Routes)
	if err != nil {
		return nil, err
	}
	set := routeSet{}
	for _, ro := range routes {
		set[ro.Name] = newRouteState(ro)
	}
	q.routes.Store(&set)
	q.target.Store(o.Target)
	if q.rt == nil {
		q.rt = http.DefaultTransport
	}
	if q.log == nil {
		q.log = zap.NewNop()
	}
	if q.now == nil {
		q.now = time.Now
	}
	setIfZero(&q.grace, 10*time.Second)
	setIfZero(&q.poll, DefaultPoll)
	setIfZero(&q.every, DefaultStatsEvery)
	if q.jitter == nil {
		q.jitter = randFloat
	}
	return q, nil
}

// SetTarget makes the next attempts go to target (a reload changed
// upstream.url); attempts in flight keep theirs.
func (q *Queue) SetTarget(target *url.URL) {
	if target != nil {
		q.target.Store(target)
	}
}

// Enqueue stores m (route, request and identity filled in by the caller)
// and returns once it is durable; it sets m.ID, m.DeliveryID (when the
// caller has none), m.Received (when zero) and m.Progress. m.Header is
// handed over: the caller does not change it after (m.Body stays its
// own, e.g. a pooled buffer). An error
// means the message was not acknowledged: ErrFull and ErrUnavailable are
// for 503 with Retry-After.
func (q *Queue) Enqueue(ctx context.Context, m *Message) error {
	rs := q.route(m.Route)
	if rs == nil {
		return fmt.Errorf("%w: %q", ErrUnknownRoute, m.Route)
	}
	now := q.now()
	m.ID = newID(now)
	if m.DeliveryID == "" {
		m.DeliveryID = m.ID
	}
	if m.Received.IsZero() {
		m.Received = now
	}
	m.Progress = Progress{State: Pending, Next: now, Expires: m.Received.Add(rs.options().MaxAge)}
	if err := q.store.Add(ctx, m); err != nil {
		return err
	}
	rs.signal()
	return nil
}

// List returns up to limit (0: all) messages of route in state, oldest
// first.
func (q *Queue) List(ctx context.Context, route string, state State, limit int) ([]*Message, error) {
	return q.store.List(ctx, route, state, limit)
}

// Get returns one message, or ErrNotFound.
func (q *Queue) Get(ctx context.Context, id string) (*Message, error) { return q.store.Get(ctx, id) }

// Retry makes a dead letter pending again, due now, with its attempts
// and max_age counted afresh; a pending message waiting for its next
// attempt is made due now. A message in an attempt is left alone.
func (q *Queue) Retry(ctx context.Context, id string) error {
	m, err := q.store.Get(ctx, id)
	if err != nil {
		return err
	}
	maxAge := DefaultMaxAge
	if rs := q.route(m.Route); rs != nil {
		maxAge = rs.options().MaxAge
	}
	now := q.now()
	if err := q.store.Revive(ctx, id, Progress{State: Pending, Next: now, Expires: now.Add(maxAge), Last: m.Last}); err != nil {
		return err
	}
	if rs := q.route(m.Route); rs != nil {
		rs.signal()
	}
	return nil
}

// RetryDead retries every dead letter of route and says how many.
func (q *Queue) RetryDead(ctx context.Context, route string) (int, error) {
	seen := map[string]bool{}
	for {
		dead, err := q.store.List(ctx, route, Dead, 500)
		if err != nil {
			return len(seen), err
		}
		progress := false
		for _, m := range dead {
			if seen[m.ID] {
				continue // still dead: revived and dead again meanwhile
			}
			seen[m.ID], progress = true, true
			if err := q.Retry(ctx, m.ID); err != nil && !errors.Is(err, ErrNotFound) {
				return len(seen), err
			}
		}
		if !progress {
			return len(seen), nil
		}
	}
}

// Drop removes a message, whatever its state.
func (q *Queue) Drop(ctx context.Context, id string) error { return q.store.Drop(ctx, id) }

// Stats counts the stored messages of every route that has any.
func (q *Queue) Stats(ctx context.Context) ([]RouteStats, error) { return q.store.Stats(ctx) }
