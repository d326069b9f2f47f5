package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"
)

// noisySpread is the spread of the bare proxy's req/s between rounds above
// which a run says, in its header, that its ratios are not to be trusted.
const noisySpread = 0.15

// rounds runs a scenario n times, each followed at once by the bare proxy
// under the same load, and sums the rounds up in one row: medians of req/s,
// latencies and CPU per request, the median of the per-round ratios (each
// ratio taken between neighbours in time, so a machine that slows down
// during the run moves both sides of it), and the spread of the bare
// proxy's req/s, which says how noisy the machine was.
func (e *env) rounds(ctx context.Context, name string, n int, run func() (row, error)) (row, error) {
	var ss, bs []row
	for k := range n {
		e.last = loadSpec{}
		s, err := run()
		if err != nil {
			return row{}, err
		}
		if e.last.next == nil {
			return row{}, fmt.Errorf("%s put no load on tokengate", name)
		}
		bare := e.last
		bare.d = min(bare.d, 4*e.o.duration) // a rate: cold scenarios' bare rounds need not use every token
		b, err := e.runBare(bare)
		if err != nil {
			return row{}, err
		}
		if b.rps > 0 {
			s.ratio = s.rps / b.rps
		}
		fmt.Fprintf(os.Stderr, "  %-27s round %d/%d: %7.0f req/s vs bare %7.0f = %.2f×; CPU s/10k %.2f vs %.2f; p99 %v; %s %s\n", name, k+1, n,
			s.rps, b.rps, s.ratio, s.cpuPer10k, b.cpuPer10k, s.p99.Round(time.Microsecond), s.idpCalls(), s.note)
		ss, bs = append(ss, s), append(bs, b)
		if err := ctx.Err(); err != nil {
			return row{}, err
		}
	}
	return summarise(name, ss, bs), nil
}

// summarise makes the row of a scenario from its rounds (tokengate's, ss,
// and the bare proxy's, bs). Counts that targets bound (identity-provider
// calls, wrong decisions, waits) are the worst round's.
func summarise(name string, ss, bs []row) row {
	pick := func(rs []row, f func(row) float64) []float64 {
		out := make([]float64, len(rs))
		for i, r := range rs {
			out[i] = f(r)
		}
		return out
	}
	dur := func(rs []row, f func(row) time.Duration) time.Duration {
		return time.Duration(median(pick(rs, func(r row) float64 { return float64(f(r)) })))
	}
	last := ss[len(ss)-1]
	r := row{name: name, rounds: len(ss), note: last.note, jwks: last.jwks, introspections: last.introspections,
		distinct: last.distinct, tokenAllowance: last.tokenAllowance, entries: last.entries, jwksAllowance: last.jwksAllowance}
	ratios := pick(ss, func(r row) float64 { return r.ratio })
	r.ratio, r.ratioMin, r.ratioMax = median(ratios), slices.Min(ratios), slices.Max(ratios)
	r.rps = median(pick(ss, func(r row) float64 { return r.rps }))
	r.cpuPer10k = median(pick(ss, func(r row) float64 { return r.cpuPer10k }))
	r.p50, r.p99 = dur(ss, func(r row) time.Duration { return r.p50 }), dur(ss, func(r row) time.Duration { return r.p99 })
	r.restRSSMB = median(pick(ss, func(r row) float64 { return r.restRSSMB }))
	for _, s := range ss {
		r.requests += s.requests
		r.peakRSSMB = max(r.peakRSSMB, s.peakRSSMB)
		r.jwks, r.introspections = max(r.jwks, s.jwks), max(r.introspections, s.introspections)
		r.wrong, r.waits, r.tokenRequests = max(r.wrong, s.wrong), max(r.waits, s.waits), max(r.tokenRequests, s.tokenRequests)
		r.distinct, r.tokenAllowance = min(r.distinct, s.distinct), min(r.tokenAllowance, s.tokenAllowance)
		r.entries, r.jwksAllowance = min(r.entries, s.entries), min(r.jwksAllowance, s.jwksAllowance)
	}
	bare := pick(bs, func(r row) float64 { return r.rps })
	r.bare = bareSide{rps: median(bare), cpuPer10k: median(pick(bs, func(r row) float64 { return r.cpuPer10k })),
		p99: dur(bs, func(r row) time.Duration { return r.p99 })}
	if m := median(bare); m > 0 {
		r.bare.spread = (slices.Max(bare) - slices.Min(bare)) / m
	}
	return r
}

// median of xs (the mean of the middle two for an even count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// worstSpread is the largest spread of the bare proxy's req/s between the
// rounds of one scenario, and that scenario.
func worstSpread(rows []row) (float64, string) {
	var worst float64
	var name string
	for _, r := range rows {
		if r.rounds > 1 && r.bare.spread >= worst {
			worst, name = r.bare.spread, r.name
		}
	}
	return worst, name
}
