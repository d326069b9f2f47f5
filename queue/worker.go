package queue

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Headers every attempt carries.
const (
	// HeaderDeliveryID is stable for a message across attempts: the
	// receiver's idempotency key.
	HeaderDeliveryID = "X-Tokengate-Delivery-Id"
	// HeaderAttempt counts attempts from 1.
	HeaderAttempt = "X-Tokengate-Attempt"
)

func randFloat() float64 { return rand.Float64() }

// Run delivers due messages of every route until ctx ends, at most each
// route's Concurrency at once; then it takes no new ones, lets attempts
// in flight finish within Grace, cuts the rest short (they stay stored,
// due at once, the attempt not counted) and returns.
func (q *Queue) Run(ctx context.Context) error {
	attempts, cut := context.WithCancel(context.WithoutCancel(ctx))
	defer cut()
	q.adoptStored(ctx)
	var wg sync.WaitGroup
	q.mu.Lock()
	q.run = &running{ctx: ctx, attempts: attempts, wg: &wg}
	for _, rs := range *q.routes.Load() {
		q.startRoute(rs)
	}
	q.mu.Unlock()
	if q.obs != nil {
		wg.Go(func() { q.report(ctx) })
	}
	<-ctx.Done()
	q.mu.Lock()
	q.run = nil // a route added from now on is not started
	q.mu.Unlock()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	grace := time.NewTimer(q.grace)
	defer grace.Stop()
	select {
	case <-done:
	case <-grace.C:
		cut()
		<-done
	}
	return nil
}

// runRoute keeps up to the route's Concurrency attempts in flight (read
// afresh each pass: a reload may change it).
func (q *Queue) runRoute(ctx, attempts context.Context, rs *routeState) {
	var inflight sync.WaitGroup
	defer inflight.Wait()
	var busy atomic.Int64
	// settling bounds the answered attempts whose outcome is being
	// written: an attempt frees its delivery slot once it holds one, so
	// the next attempt does not wait for the store's commit. A crash can
	// thus repeat up to Concurrency+SettleWindow messages of the route.
	settling := make(chan struct{}, SettleWindow)
	// ready are leased ahead (Prefetch per slot), so a slot that frees
	// does not wait for a lease of one message (a Redis round trip).
	var ready []*Message
	defer func() { q.release(attempts, ready) }()
	timer := time.NewTimer(q.poll)
	defer timer.Stop()
	failing, more := false, false
	for {
		ro := rs.options()
		free := ro.Concurrency - int(busy.Load())
		if free > 0 && len(ready) < free {
			want := free - len(ready) + Prefetch*ro.Concurrency
			msgs, err := q.store.Lease(ctx, rs.name, q.now(), want)
			if err != nil && ctx.Err() == nil && !failing {
				q.log.Warn("queue: cannot read due messages; trying again", zap.String("route", rs.name), zap.Error(err))
			}
			failing = err != nil
			more = err == nil && len(msgs) == want
			at := time.Now()
			for _, m := range msgs {
				m.leasedAt = at
			}
			ready = append(ready, msgs...)
		}
		for ; free > 0 && len(ready) > 0; free-- {
			m := ready[0]
			ready[0] = nil
			ready = ready[1:]
			busy.Add(1)
			inflight.Go(func() {
				if q.droppedMeanwhile(attempts, m) {
					busy.Add(-1)
					rs.signal()
					return
				}
				outcome := q.try(attempts, &ro, m)
				m.Body = nil // settling writes progress only
				settling <- struct{}{}
				busy.Add(-1)
				rs.signal()
				q.settle(attempts, m, outcome)
				<-settling
			})
		}
		if free > 0 && more && ctx.Err() == nil {
			continue // there may be more due
		}
		timer.Reset(q.poll)
		select {
		case <-ctx.Done():
			return
		case <-rs.wake:
		case <-timer.C:
		}
	}
}

// DeliverDue makes one pass: it leases up to Concurrency due messages of
// every route, attempts them and returns how many it attempted, once all
// are settled. Run does the same continuously; tests drive it by hand.
func (q *Queue) DeliverDue(ctx context.Context) (int, error) {
	var wg sync.WaitGroup
	n := 0
	var errs []error
	for _, rs := range *q.routes.Load() {
		ro := rs.options()
		msgs, err := q.store.Lease(ctx, rs.name, q.now(), ro.Concurrency)
		errs = append(errs, err)
		n += len(msgs)
		for _, m := range msgs {
			wg.Go(func() { q.deliver(ctx, &ro, m) })
		}
	}
	wg.Wait()
	return n, errors.Join(errs...)
}

// Prefetch is how many messages per unit of a route's Concurrency are
// leased ahead of a free slot.
const Prefetch = 3

// SettleWindow is how many answered attempts of a route may have their
// outcome being written at once, beside the Concurrency in flight: with
// group commits, deliveries then do not wait one fsync each.
const SettleWindow = 64

// settleTimeout bounds writing an attempt's outcome.
const settleTimeout = 10 * time.Second

// deliver makes one attempt and stores its outcome.
func (q *Queue) deliver(ctx context.Context, ro *RouteOptions, m *Message) {
	q.settle(ctx, m, q.try(ctx, ro, m))
}

// try makes one attempt (or finds m expired) and returns the outcome,
// with m's progress updated to match.
func (q *Queue) try(ctx context.Context, ro *RouteOptions, m *Message) string {
	now := q.now()
	outcome := OutcomeRetry
	switch {
	case !m.Expires.IsZero() && !now.Before(m.Expires):
		outcome, m.Reason = OutcomeDead, "max_age"
	default:
		m.Attempts++
		actx, span := q.startAttempt(ctx, m)
		ans, wait := q.attempt(actx, ro, m)
		if ans.Status == 0 && ctx.Err() != nil { // shutdown cut it short: not counted
			m.Attempts--
			m.Next = now
			outcome = OutcomeAborted
			endAttempt(span, ans, outcome)
			break
		}
		m.Last = &ans
		now = q.now()
		outcome, m.Reason, m.Next = q.judge(ro, m, ans, wait, now)
		endAttempt(span, ans, outcome)
	}
	return outcome
}

// settle stores an attempt's outcome. Its first write has no deadline of
// its own (each store bounds its writes: the file store's commit by the
// disk, Redis by writeBound), so the common case costs no timer; a
// write the store could not take is tried again within settleTimeout.
func (q *Queue) settle(ctx context.Context, m *Message, outcome string) {
	ctx, start := context.WithoutCancel(ctx), time.Now()
	err := q.record(ctx, m, outcome)
	if errors.Is(err, ErrUnavailable) {
		err = q.settleAgain(ctx, m, outcome, err, start)
	}
	switch {
	case err != nil && !errors.Is(err, ErrNotFound): // not found: dropped by an operator meanwhile
		q.log.Warn("queue: could not record an attempt; the message is attempted again", zap.String("route", m.Route),
			zap.String("id", m.ID), zap.String("outcome", outcome), zap.Error(err))
	case err == nil && outcome == OutcomeDead: // said once it is one
		q.log.Warn("queue: a message is now a dead letter", zap.String("route", m.Route), zap.String("id", m.ID),
			zap.String("reason", m.Reason), zap.Int("attempts", m.Attempts))
	}
	if q.obs != nil {
		q.obs.ObserveAttempt(m.Route, outcome)
	}
}

// settleAgain writes an outcome the store could not take (err) again,
// every settleRetryEvery until settleRetryFor, all within settleTimeout,
// both from start: a blip (Redis restarting, a full disk freed) is
// outlasted rather than the message attempted again.
func (q *Queue) settleAgain(ctx context.Context, m *Message, outcome string, err error, start time.Time) error {
	sctx, cancel := context.WithDeadline(ctx, start.Add(settleTimeout))
	defer cancel()
	for deadline := start.Add(settleRetryFor); errors.Is(err, ErrUnavailable) && time.Now().Before(deadline); {
		select {
		case <-sctx.Done():
		case <-time.After(settleRetryEvery):
		}
		if sctx.Err() != nil {
			break
		}
		err = q.record(sctx, m, outcome)
	}
	return err
}

// record writes an attempt's outcome once.
func (q *Queue) record(ctx context.Context, m *Message, outcome string) error {
	switch outcome {
	case OutcomeDelivered:
		return q.store.Ack(ctx, m)
	case OutcomeDead:
		return q.store.Bury(ctx, m)
	default:
		return q.store.Retry(ctx, m)
	}
}

// settleRetryFor bounds how long an outcome the store could not take is
// written again, every settleRetryEvery; it stays below writeFailedRetry,
// so a file store message handed back meanwhile is not leased again
// before its outcome is written. Past it the message is attempted again
// (file store: 5 s later; Redis: after its lease).
const (
	settleRetryFor   = 4 * time.Second
	settleRetryEvery = 250 * time.Millisecond
)

// judge decides what an answer means: taken, tried again (when), or dead.
func (q *Queue) judge(ro *RouteOptions, m *Message, ans Answer, wait time.Duration, now time.Time) (string, string, time.Time) {
	if ans.Status != 0 && ro.Success.Has(ans.Status) {
		return OutcomeDelivered, "", m.Next
	}
	if s := ans.Status; s >= 400 && s < 500 && !retried4xx(s) && !ro.RetryOn.Has(s) {
		return OutcomeDead, "refused", m.Next
	}
	if m.Attempts >= ro.MaxAttempts {
		return OutcomeDead, "max_attempts", m.Next
	}
	if wait < 0 {
		wait = backoff(ro, m.Attempts, q.jitter())
	}
	next := now.Add(wait)
	if !m.Expires.IsZero() && next.After(m.Expires) {
		return OutcomeDead, "max_age", m.Next
	}
	return OutcomeRetry, "", next
}

// retried4xx are the 4xx answers that say "later", not "never".
func retried4xx(s int) bool {
	return s == http.StatusRequestTimeout || s == http.StatusConflict || s == http.StatusTooEarly || s == http.StatusTooManyRequests
}

// backoff is the wait after the n-th failed attempt: initial·2^(n-1),
// at most max, drawn between half of it and all of it.
func backoff(ro *RouteOptions, n int, jitter float64) time.Duration {
	d := ro.BackoffMax
	if n <= 31 {
		if e := ro.BackoffInitial << (n - 1); e > 0 && e < d {
			d = e
		}
	}
	return d/2 + time.Duration(jitter*float64(d-d/2))
}

// attempt sends m once. wait is the receiver's Retry-After on 429 or 503
// (-1: none).
func (q *Queue) attempt(ctx context.Context, ro *RouteOptions, m *Message) (Answer, time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, ro.Timeout)
	defer cancel()
	resp, err := q.rt.RoundTrip(q.request(ctx, m))
	if err != nil {
		return Answer{Error: shortError(err), At: q.now()}, -1
	}
	defer resp.Body.Close()
	head, err := io.ReadAll(io.LimitReader(resp.Body, MaxExcerpt))
	if err == nil && len(head) == MaxExcerpt { // more may follow
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	}
	ans := Answer{Status: resp.StatusCode, At: q.now()}
	if !ro.Success.Has(resp.StatusCode) { // a taken message's answer is not kept
		ans.Body = excerpt(head)
	}
	wait := time.Duration(-1)
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		wait = retryAfter(resp.Header.Get("Retry-After"), q.now())
	}
	return ans, wait
}

// retryAfter parses seconds or an HTTP date; -1 when absent or invalid.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return -1
	}
	if s, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return -1
}

func shortError(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// report sends stored counts to the Observer every StatsEvery; a
// configured route without messages is reported empty.
func (q *Queue) report(ctx context.Context) {
	t := time.NewTicker(q.every)
	defer t.Stop()
	for {
		stats, err := q.store.Stats(ctx)
		if err == nil {
			seen := map[string]bool{}
			for _, s := range stats {
				seen[s.Route] = true
				age := time.Duration(0)
				if !s.Oldest.IsZero() {
					age = max(q.now().Sub(s.Oldest), 0)
				}
				q.obs.ObserveStored(s, age)
			}
			for r := range *q.routes.Load() {
				if !seen[r] {
					q.obs.ObserveStored(RouteStats{Route: r}, 0)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
