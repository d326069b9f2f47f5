package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/tokengate/tokengate/queue"
)

// queuedBench is the opt-in "queued" subcommand: throughput of a queued
// route against the bare proxy, a receiver outage, and kill -9 of the gate
// under load. Each prints a short report; out, if set, gets them all.
func queuedBench(ctx context.Context, o queuedOpts) error {
	e, err := newEnv(options{delay: 2 * time.Millisecond})
	if err != nil {
		return err
	}
	defer e.close()
	recv, err := newReceiver()
	if err != nil {
		return err
	}
	defer recv.down()
	e.sink.Close()
	e.sink.URL = recv.URL() // the bare proxy forwards to the same receiver
	q := &queuedEnv{env: e, o: o, recv: recv, token: e.idp.Mint(e.idp.Claims(benchAud, "webhooks:write"))}
	if o.store == "redis" {
		if q.redis, err = startRedis(e.dir); err != nil {
			return err
		}
		defer q.redis.stop()
	} else if o.store != "file" {
		return fmt.Errorf("-store %q: file or redis", o.store)
	}
	var report strings.Builder
	load := "closed loop"
	if o.rate > 0 {
		load = fmt.Sprintf("%.0f req/s offered in the receiver-down and kill runs", o.rate)
	}
	if o.cpuRate > 0 {
		load += fmt.Sprintf("; %.0f req/s offered in the throughput rounds", o.cpuRate)
	}
	conns := fmt.Sprintf("%d connections", o.conns)
	if o.sweep != "" {
		conns = "connections " + o.sweep + " in the throughput rounds, " + conns + " in the others"
	}
	concurrency := fmt.Sprint(o.concurrency)
	if o.concurrency <= 0 {
		concurrency = "= connections"
	}
	fmt.Fprintf(&report, "# queued delivery: store %s, %s (%s), route concurrency %s, backoff 200ms..2s, max_attempts 1000 (the default 25 at this compressed backoff spans about 40 s: a longer outage would make messages dead letters, kept but not delivered)\n\n", o.store, conns, load, concurrency)
	for _, m := range []struct {
		name string
		run  func(context.Context, *strings.Builder) error
	}{{"throughput", q.throughput}, {"down", q.receiverDown}, {"kill", q.killNine}} {
		if o.only != "" && !strings.Contains(o.only, m.name) {
			continue
		}
		if err := m.run(ctx, &report); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if o.out != "" {
		if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(o.out, []byte(report.String()), 0o644)
	}
	return nil
}

// emit prints a section and keeps it for the file.
func emit(report *strings.Builder, format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	fmt.Print(s)
	report.WriteString(s)
}

func (q *queuedEnv) d() time.Duration { return q.o.d }

// paced makes next wait for a shared limiter of perSecond requests a
// second (0: next as it is) for at most d: the bare proxy's rounds get the
// offered load the queued route's got.
func paced(perSecond float64, d time.Duration, next func(int64) (request, bool)) func(int64) (request, bool) {
	if perSecond <= 0 {
		return next
	}
	lim := rate.NewLimiter(rate.Limit(perSecond), 1)
	end := time.Now().Add(d)
	return func(i int64) (request, bool) {
		ctx, cancel := context.WithDeadline(context.Background(), end)
		defer cancel()
		if lim.Wait(ctx) != nil {
			return request{}, false
		}
		return next(i)
	}
}

// receiverDown runs load for d+down: the receiver is up for the first d/2,
// down for down, then up again for the last d/2; then the drain is waited
// for.
func (q *queuedEnv) receiverDown(ctx context.Context, report *strings.Builder) error {
	led := newLedger()
	q.recv.led.Store(led)
	cfg, err := q.queuedConfig("down", q.o.conns)
	if err != nil {
		return err
	}
	p, err := startTokengate(q.bin, cfg)
	if err != nil {
		return err
	}
	defer p.stop()
	emit(report, "## receiver down: load for %v, the receiver down for %v of it (from %v)\n\n", q.o.d+q.o.down, q.o.down, q.o.d/2)
	lctx, cancel := context.WithTimeout(ctx, q.o.d+q.o.down)
	defer cancel()
	done := make(chan struct{})
	var st *stats
	var errs int64
	go func() {
		defer close(done)
		st, errs = queuedLoad(lctx, func() string { return "http://" + p.addr }, q.token, q.o.conns, q.o.rate, led)
	}()
	var back time.Time
	var atDown, atUp tally
	select {
	case <-time.After(q.o.d / 2):
		q.recv.down()
		atDown = led.tally()
	case <-lctx.Done():
	}
	select {
	case <-time.After(q.o.down):
	case <-ctx.Done():
	}
	atUp = led.tally()
	if err := q.recv.up(); err != nil {
		return err
	}
	back = time.Now()
	<-done
	endLoad := led.tally()
	drain, ok := waitDrain(led, q.o.drain)
	sinceBack := time.Since(back)
	t := led.tally()
	emit(report, "acknowledged %d (%.0f/s, p99 %v, statuses %v, transport errors %d); acknowledged while the receiver was down: %d\n",
		t.acked, float64(endLoad.acked)/st.elapsed.Seconds(), st.percentile(0.99, nil).Round(time.Microsecond), st.statuses(), errs, atUp.acked-atDown.acked)
	emit(report, "delivered: %d taken, %d distinct ids, %d duplicates, %d taken but never acknowledged; backlog when the load ended %d\n",
		t.takes, t.distinct, t.duplicates, t.unacked, endLoad.missing)
	emit(report, "drain after the load ended: %v (%v after the receiver returned); drained: %v\n", drain.Round(time.Millisecond), sinceBack.Round(time.Millisecond), ok)
	emit(report, "%s\n\n", verdictLine(t, 0, ok))
	return nil
}

// killNine runs load while the gate is SIGKILLed every kill interval and
// started again on the same config and store, kills times; the load runs
// one more interval after the last restart, then the drain is waited for.
func (q *queuedEnv) killNine(ctx context.Context, report *strings.Builder) error {
	led := newLedger()
	q.recv.led.Store(led)
	cfg, err := q.queuedConfig("kill", q.o.conns)
	if err != nil {
		return err
	}
	p, err := startTokengate(q.bin, cfg)
	if err != nil {
		return err
	}
	addr := p.addr
	emit(report, "## kill -9: the gate SIGKILLed every %v, %d times, under load, restarted on the same store\n\n", q.o.kill, q.o.kills)
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	var st *stats
	var errs int64
	go func() {
		defer close(done)
		st, errs = queuedLoad(lctx, func() string { return "http://" + addr }, q.token, q.o.conns, q.o.rate, led)
	}()
	var inFlight []int64
	var restarts []time.Duration
	for range q.o.kills {
		select {
		case <-time.After(q.o.kill):
		case <-ctx.Done():
		}
		inFlight = append(inFlight, q.recv.inFlight.Load())
		kill9(p)
		if p, err = startTokengate(q.bin, cfg); err != nil {
			cancel()
			<-done
			return fmt.Errorf("restart after kill -9: %w", err)
		}
		restarts = append(restarts, p.ready)
	}
	select {
	case <-time.After(q.o.kill):
	case <-ctx.Done():
	}
	cancel()
	<-done
	endLoad := led.tally()
	drain, ok := waitDrain(led, q.o.drain)
	p.stop()
	t := led.tally()
	conc := q.routeConcurrency(q.o.conns)
	bound := int64(q.o.kills * (conc + queue.SettleWindow)) // attempts in flight + answered ones being written
	emit(report, "acknowledged %d (statuses %v, transport errors while the gate was down %d); restart to ready %v\n",
		t.acked, st.statuses(), errs, restarts)
	emit(report, "receiver requests in flight at each kill: %v; at most %d per kill (route concurrency %d in flight + %d answered whose outcome is being written) → duplicate bound %d\n",
		inFlight, conc+queue.SettleWindow, conc, queue.SettleWindow, bound)
	emit(report, "delivered: %d taken, %d distinct ids, %d duplicates, %d taken but never acknowledged (no 202 reached the sender: allowed); backlog when the load ended %d\n",
		t.takes, t.distinct, t.duplicates, t.unacked, endLoad.missing)
	emit(report, "drain after the load ended: %v; drained: %v\n", drain.Round(time.Millisecond), ok)
	emit(report, "%s\n\n", verdictLine(t, int(bound), ok))
	return nil
}

// verdictLine says whether every acknowledged message was delivered and
// the duplicates stayed within bound. A backlog that did not drain within
// the wait is no verdict on loss: the messages may still be stored.
func verdictLine(t tally, bound int, drained bool) string {
	loss := "PASS: every acknowledged message delivered"
	switch {
	case t.missing > 0 && !drained:
		loss = fmt.Sprintf("UNDECIDED: %d acknowledged messages not delivered when the drain wait ended (-drain; still stored, not counted as lost)", t.missing)
	case t.missing > 0:
		loss = fmt.Sprintf("FAIL: %d acknowledged messages never delivered (e.g. %v)", t.missing, t.lost)
	}
	dup := fmt.Sprintf("PASS: %d duplicates ≤ %d", t.duplicates, bound)
	if t.duplicates > bound {
		dup = fmt.Sprintf("FAIL: %d duplicates > %d", t.duplicates, bound)
	}
	return loss + "; " + dup
}
