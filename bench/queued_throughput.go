package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// queuedSide is one queued half of a throughput round.
type queuedSide struct {
	acked, distinct, missing   int
	rps, cpuPer10k, selfPer10k float64
	p99, drain                 time.Duration
	drained                    bool
	statuses                   map[int]int
	idle                       float64
}

// bareSideRound is one bare half of a throughput round.
type bareSideRound struct {
	row
	selfPer10k, idle float64
}

// sweepLevel is what the rounds at one connection count came to.
type sweepLevel struct {
	conns                     int
	ratio, ratioMin, ratioMax float64
	sustained                 float64 // median of acknowledged ÷ (load + drain) over bare req/s
	queued, bare              float64 // median acknowledged req/s and bare req/s
	kept                      float64 // median acknowledged ÷ (load + drain), req/s
	p99Diff                   time.Duration
	idleQueued, idleBare      float64
}

// throughput runs the throughput rounds at -c connections, or at each
// count of -sweep, and then compares each side's best level: the queued
// route's answer waits for a disk commit, so at few connections the
// closed loop is bound by that wait, not by the CPUs (the idle share
// says so), and a sweep shows where each side's capacity lies.
func (q *queuedEnv) throughput(ctx context.Context, report *strings.Builder) error {
	levels := []int{q.o.conns}
	if q.o.sweep != "" {
		levels = levels[:0]
		for _, f := range strings.Split(q.o.sweep, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				return fmt.Errorf("-sweep %q: connection counts, comma-separated", q.o.sweep)
			}
			levels = append(levels, n)
		}
	}
	var done []sweepLevel
	for _, conns := range levels {
		l, err := q.throughputAt(ctx, report, conns)
		if err != nil {
			return err
		}
		done = append(done, l)
	}
	if len(done) < 2 {
		return nil
	}
	emit(report, "## throughput by connections (medians of the rounds above)\n\n| connections | queued ack/s | bare req/s | ratio (min–max) | delivered too: ratio of acknowledged ÷ (load + drain) | p99 queued − bare | machine idle queued / bare |\n|---|---|---|---|---|---|---|\n")
	var bestQ, bestB sweepLevel
	for _, l := range done {
		emit(report, "| %d | %.0f | %.0f | %.2f× (%.2f–%.2f) | %.2f× | %+.1f ms | %.0f %% / %.0f %% |\n", l.conns, l.queued, l.bare, l.ratio, l.ratioMin, l.ratioMax,
			l.sustained, float64(l.p99Diff)/float64(time.Millisecond), l.idleQueued, l.idleBare)
		if l.kept > bestQ.kept {
			bestQ = l
		}
		if l.bare > bestB.bare {
			bestB = l
		}
	}
	emit(report, "\ncapacity: the queued route's best median of acknowledged ÷ (load + drain), %.0f/s (%d connections), over the bare proxy's best median, %.0f req/s (%d connections) = %.2f×\n\n",
		bestQ.kept, bestQ.conns, bestB.bare, bestB.conns, bestQ.kept/bestB.bare)
	return nil
}

// throughputAt alternates rounds at conns connections: the queued gate
// for d (then the wait for its backlog to drain), and the bare proxy for
// d under the same load. Rounds alternate which runs first (queued, bare,
// then bare, queued), so that a drift of the machine's speed during the
// run does not favour either; each round's ratio compares neighbours.
func (q *queuedEnv) throughputAt(ctx context.Context, report *strings.Builder, conns int) (sweepLevel, error) {
	emit(report, "## throughput: %d rounds of %v at %d connections, queued route vs bare httputil.ReverseProxy\n\n", q.o.rounds, q.d(), conns)
	emit(report, "| round | first | queued ack/s | bare req/s | ratio | delivered too | p99 queued | p99 bare | delivered/s during load | backlog at end | drain | CPU s/10k queued (load + drain) | CPU s/10k bare | bench's own CPU s/10k queued / bare | machine idle queued / bare | statuses |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	var ratios, sustained, kept, cpuRatios, qrps, brps, p99d, qidle, bidle []float64
	for k := range q.o.rounds {
		var qs queuedSide
		var b bareSideRound
		var err error
		first := "queued"
		if k%2 == 0 {
			if qs, err = q.queuedHalf(ctx, k, conns); err == nil {
				b, err = q.bareHalf(conns)
			}
		} else {
			first = "bare"
			if b, err = q.bareHalf(conns); err == nil {
				qs, err = q.queuedHalf(ctx, k, conns)
			}
		}
		if err != nil {
			return sweepLevel{}, err
		}
		ratio, sus := 0.0, 0.0
		if b.rps > 0 {
			ratio = qs.rps / b.rps
			sus = float64(qs.acked) / (q.d() + qs.drain).Seconds() / b.rps
		}
		sustained = append(sustained, sus)
		kept = append(kept, float64(qs.acked)/(q.d()+qs.drain).Seconds())
		ratios, qrps, brps = append(ratios, ratio), append(qrps, qs.rps), append(brps, b.rps)
		p99d = append(p99d, float64(qs.p99-b.p99))
		qidle, bidle = append(qidle, qs.idle), append(bidle, b.idle)
		if b.cpuPer10k > 0 {
			cpuRatios = append(cpuRatios, qs.cpuPer10k/b.cpuPer10k)
		}
		drained := qs.drain.Round(time.Millisecond).String()
		if !qs.drained {
			drained = "NOT drained in " + q.o.drain.String()
		}
		emit(report, "| %d | %s | %.0f | %.0f | %.2f× | %.2f× | %v | %v | %.0f | %d | %s | %.2f | %.2f | %.2f / %.2f | %.0f %% / %.0f %% | %v |\n",
			k+1, first, qs.rps, b.rps, ratio, sus, qs.p99.Round(time.Microsecond), b.p99.Round(time.Microsecond),
			float64(qs.distinct)/q.d().Seconds(), qs.missing, drained, qs.cpuPer10k, b.cpuPer10k,
			qs.selfPer10k, b.selfPer10k, qs.idle, b.idle, qs.statuses)
	}
	emit(report, "\nmedian ratio %.2f× (acknowledged req/s over the bare proxy's req/s, each round against its neighbour); delivered too %.2f× (the messages acknowledged during the load over the load's time and the drain's: what the route sustains with its deliveries keeping up); gate CPU per message %.2f× the bare proxy's (median). Machine idle is the share of both cores idle or waiting for the disk during the load: where one side's is well above the other's, the wait for answers, not the CPUs, limited that side.\n\n", median(ratios), median(sustained), median(cpuRatios))
	return sweepLevel{conns: conns, ratio: median(ratios), sustained: median(sustained), ratioMin: slices.Min(ratios), ratioMax: slices.Max(ratios),
		queued: median(qrps), bare: median(brps), kept: median(kept), p99Diff: time.Duration(median(p99d)), idleQueued: median(qidle), idleBare: median(bidle)}, nil
}

// queuedHalf runs the queued gate of round k on a fresh store for d at
// conns connections, and
// waits for its backlog to drain.
func (q *queuedEnv) queuedHalf(ctx context.Context, k, conns int) (queuedSide, error) {
	led := newLedger()
	q.recv.led.Store(led)
	cfg, err := q.queuedConfig(fmt.Sprintf("tp%d-%d", conns, k), conns)
	if err != nil {
		return queuedSide{}, err
	}
	p, err := startTokengate(q.bin, cfg)
	if err != nil {
		return queuedSide{}, err
	}
	defer p.stop()
	cpu0, self0, idle0 := p.cpuSeconds(), selfCPU(), readIdle()
	lctx, cancel := context.WithTimeout(ctx, q.d())
	st, _ := queuedLoad(lctx, func() string { return "http://" + p.addr }, q.token, conns, q.o.cpuRate, led)
	cancel()
	idle := idle0.share(readIdle())
	during := led.tally()
	drain, ok := waitDrain(led, q.o.drain)
	cpu, self := p.cpuSeconds()-cpu0, selfCPU()-self0
	return queuedSide{acked: during.acked, distinct: during.distinct, missing: during.missing,
		rps: float64(during.acked) / st.elapsed.Seconds(), cpuPer10k: per10k(cpu, during.acked), selfPer10k: per10k(self, during.acked),
		p99: st.percentile(0.99, nil), drain: drain, drained: ok, statuses: st.statuses(), idle: idle}, nil
}

// bareHalf runs the bare proxy for d under the queued half's load.
func (q *queuedEnv) bareHalf(conns int) (bareSideRound, error) {
	self0, idle0 := selfCPU(), readIdle()
	b, err := q.runBare(loadSpec{conns: conns, d: q.d(), next: paced(q.o.cpuRate, q.d(), func(int64) (request, bool) {
		return request{path: "/hooks/q", token: q.token}, true
	})})
	if err != nil {
		return bareSideRound{}, err
	}
	return bareSideRound{row: b, selfPer10k: per10k(selfCPU()-self0, b.requests), idle: idle0.share(readIdle())}, nil
}

// idleTicks are the machine's CPU ticks from /proc/stat: idle (with
// iowait) and all.
type idleTicks struct{ idle, total float64 }

// readIdle reads the "cpu" line of /proc/stat (zero when unreadable).
func readIdle() idleTicks {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return idleTicks{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return idleTicks{}
	}
	var t idleTicks
	for i, s := range f[1:] {
		v, _ := strconv.ParseFloat(s, 64)
		if i < 8 { // user nice system idle iowait irq softirq steal (guest is in user)
			t.total += v
		}
		if i == 3 || i == 4 {
			t.idle += v
		}
	}
	return t
}

// share is the percentage of ticks idle between t and later.
func (t idleTicks) share(later idleTicks) float64 {
	if d := later.total - t.total; d > 0 {
		return 100 * (later.idle - t.idle) / d
	}
	return 0
}
