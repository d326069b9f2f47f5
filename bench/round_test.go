package main

import (
	"strings"
	"testing"
	"time"
)

// TestRoundsSumUpAsMediansAndSayWhenTheMachineWasNoisy: a scenario's row
// holds the median of its per-round ratios (not the ratio of one lucky or
// unlucky round), CPU per request for both sides, the worst round's
// bounded counts, and a run whose bare rounds spread by more than 15 %
// says so in its header.
func TestRoundsSumUpAsMediansAndSayWhenTheMachineWasNoisy(t *testing.T) {
	mk := func(rps, cpu float64, calls int) row {
		return row{rps: rps, cpuPer10k: cpu, requests: 100, introspections: calls, jwks: -1, p99: time.Millisecond}
	}
	tg := []row{mk(900, 1.0, 1), mk(500, 1.2, 3), mk(1000, 0.9, 1)}
	bare := []row{mk(1000, 0.8, -1), mk(1000, 0.9, -1), mk(1000, 0.7, -1)}
	for i := range tg {
		tg[i].ratio = tg[i].rps / bare[i].rps
	}
	r := summarise("jwt-hot", tg, bare)
	if r.ratio != 0.9 || r.ratioMin != 0.5 || r.ratioMax != 1.0 || r.rps != 900 || r.bare.rps != 1000 {
		t.Fatalf("ratio %.2f (%.2f–%.2f), req/s %.0f vs %.0f; want the median 0.90 (0.50–1.00), 900 vs 1000", r.ratio, r.ratioMin, r.ratioMax, r.rps, r.bare.rps)
	}
	if r.cpuPer10k != 1.0 || r.bare.cpuPer10k != 0.8 || r.introspections != 3 || r.requests != 300 || r.bare.spread != 0 {
		t.Fatalf("cpu %.2f vs %.2f, introspections %d, requests %d, spread %.2f", r.cpuPer10k, r.bare.cpuPer10k, r.introspections, r.requests, r.bare.spread)
	}
	quiet := render(options{rounds: 3, duration: time.Second}, []row{r}, nil)
	if strings.Contains(quiet, "Noisy") || !strings.Contains(quiet, "| jwt-hot | 3 | 300 | 900 | 1000 | 0.90× (0.50–1.00) | 1.00 | 0.80 |") {
		t.Fatalf("quiet run rendered as:\n%s", quiet)
	}
	bare[1].rps = 800 // spread (1000-800)/1000 = 20 %
	noisy := render(options{rounds: 3, duration: time.Second}, []row{summarise("jwt-hot", tg, bare)}, nil)
	if !strings.Contains(noisy, "**Noisy run: the bare proxy's req/s spread by up to 20% between the rounds of one scenario (jwt-hot)") {
		t.Fatalf("noisy run rendered as:\n%s", noisy)
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
