package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

func verdict(ok bool, what, got string) string {
	mark := "MET"
	if !ok {
		mark = "MISSED"
	}
	return fmt.Sprintf("%s — %s: %s", mark, what, got)
}

// targets checks a scenario's row against the targets. A ratio is
// the median of the per-round ratios against the bare proxy.
func targets(r row) []string {
	var out []string
	switch r.name {
	case "jwt-hot", "jwt-hot-traced", "introspect-hot":
		min := 0.9
		if strings.HasPrefix(r.name, "jwt-hot") {
			min = 0.95 // with the access log on (tokengate at --log-level info)
		}
		out = append(out,
			verdict(r.ratio >= min, fmt.Sprintf("%s ≥ %.0f%% of bare req/s (access log at %s)", r.name, min*100, tokengateLogLevel), fmt.Sprintf("%.2f× (rounds %.2f–%.2f)", r.ratio, r.ratioMin, r.ratioMax)),
			verdict(r.p99-r.bare.p99 <= time.Millisecond, r.name+" p99 ≤ bare p99 + 1 ms", fmt.Sprintf("%v vs %v", r.p99.Round(time.Microsecond), r.bare.p99.Round(time.Microsecond))))
	case "introspect-cold":
		out = append(out, verdict(r.introspections <= r.distinct, "introspect-cold: at most one call per distinct token",
			fmt.Sprintf("%d calls for %d tokens (worst round)", r.introspections, r.distinct)))
	case "burst":
		out = append(out, verdict(r.introspections == 1, "burst: exactly one introspection call for 500 requests at once", strconv.Itoa(r.introspections)))
	case "invalid-flood":
		out = append(out,
			verdict(r.jwks <= r.jwksAllowance, "invalid-flood: unknown-kid refetches within the policy: the start-up fetch, a burst of 3, then at most one a second shared by every waiting token",
				fmt.Sprintf("%d (worst round; at most %d for its process lifetime)", r.jwks, r.jwksAllowance)),
			verdict(r.introspections <= 200, "invalid-flood: at most one introspection call per distinct bad opaque token (100 garbage + 100 unknown opaque) per negative TTL", strconv.Itoa(r.introspections)),
			verdict(r.wrong == 0, "invalid-flood: no wrong decision", strconv.Itoa(r.wrong)))
	case "egress":
		out = append(out,
			verdict(r.ratio >= 0.9, "egress (token added, access log at "+tokengateLogLevel+") ≥ 90% of bare req/s to the same upstream", fmt.Sprintf("%.2f×", r.ratio)),
			verdict(r.tokenRequests <= r.tokenAllowance, "egress: one token request per token lifetime (a refresh at 80 %, plus the first), none per request",
				fmt.Sprintf("%d token requests (worst round; at most %d allowed)", r.tokenRequests, r.tokenAllowance)),
			verdict(r.waits == 0, "egress: no request waited for a token in steady state", strconv.Itoa(r.waits)))
	case "cache-100k", "cache-1m":
		want, bound := 100_000.0, 48.0
		if r.name == "cache-1m" {
			want, bound = 1_000_000, 350
		}
		out = append(out, verdict(r.entries >= want && r.peakRSSMB <= bound,
			fmt.Sprintf("%.0f cached tokens in at most %.0f MB RSS (peak, worst round; default GC settings, no GOMEMLIMIT)", want, bound),
			fmt.Sprintf("%.1f MB peak, %.1f MB after, %.0f entries", r.peakRSSMB, r.restRSSMB, r.entries)))
	}
	return out
}

// crossTargets compare scenarios with each other.
func crossTargets(rows []row) []string {
	by := map[string]row{}
	for _, r := range rows {
		by[r.name] = r
	}
	var out []string
	hot, ok := by["jwt-hot"]
	if !ok {
		return nil
	}
	if big, ok := by["big-body"]; ok {
		out = append(out, verdict(big.peakRSSMB <= hot.peakRSSMB+10, "big-body: peak RSS does not follow the body size (within 10 MB of jwt-hot)",
			fmt.Sprintf("%.1f MB with 50 MB bodies vs %.1f MB", big.peakRSSMB, hot.peakRSSMB)))
	}
	if tu, ok := by["token-url returning client"]; ok && hot.ratio > 0 {
		// Both against their own bare rounds: the machine's drift between
		// the two scenarios cancels out.
		x := tu.ratio / hot.ratio
		out = append(out, verdict(x >= 0.3, "Token URL, one returning client: tokens/s ≥ 0.3× jwt-hot req/s",
			fmt.Sprintf("%.2f× (%.0f tokens/s vs %.0f req/s; each against its own bare rounds)", x, tu.rps, hot.rps)))
	}
	return out
}

func render(o options, rows []row, checks []string) string {
	var b strings.Builder
	host, _ := os.Hostname()
	model := cpuModel()
	fmt.Fprintf(&b, "# tokengate benchmark\n\n")
	fmt.Fprintf(&b, "%s on %s (%d cores, %s), %s. Closed loop, %d connections. Every scenario runs %d rounds; each round runs tokengate for %v (cold scenarios: until their tokens are used) and then, at once, the bare proxy (httputil.ReverseProxy, same transport) under the same requests, connections and time bound; the table shows medians over the rounds, and \"vs bare\" is the median of the per-round ratios. CPU s / 10k req is user+system time of the process (from /proc/PID/stat) per 10,000 requests. Introspection endpoint delay %v. Every process on loopback.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), host, runtime.NumCPU(), model, runtime.Version(), o.conns, o.rounds, o.duration, o.delay)
	if worst, name := worstSpread(rows); name == "" {
		fmt.Fprintf(&b, "One round per scenario: no spread of the bare proxy measured.\n\n")
	} else if worst > noisySpread {
		fmt.Fprintf(&b, "**Noisy run: the bare proxy's req/s spread by up to %.0f%% between the rounds of one scenario (%s), above the %.0f%% this harness trusts.** Other load shared the machine; the ratios are medians of neighbouring rounds, and CPU per request, which waiting for the CPU does not inflate, is the steadier comparison.\n\n", worst*100, name, noisySpread*100)
	} else {
		fmt.Fprintf(&b, "The bare proxy's req/s spread by at most %.0f%% between the rounds of one scenario (%s): within the %.0f%% this harness trusts.\n\n", worst*100, name, noisySpread*100)
	}
	fmt.Fprintf(&b, "| scenario | rounds | requests | req/s | bare req/s | vs bare (range) | CPU s / 10k req | bare CPU s / 10k req | p50 | p99 | peak RSS MB | bare spread | identity-provider calls | notes |\n")
	fmt.Fprintf(&b, "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %d | %d | %.0f | %.0f | %.2f× (%.2f–%.2f) | %.2f | %.2f | %v | %v | %.1f | %.0f%% | %s | %s |\n", r.name, r.rounds, r.requests, r.rps, r.bare.rps,
			r.ratio, r.ratioMin, r.ratioMax, r.cpuPer10k, r.bare.cpuPer10k,
			r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.peakRSSMB, r.bare.spread*100, r.idpCalls(), strings.ReplaceAll(r.note, "|", "/"))
	}
	fmt.Fprintf(&b, "\n## Targets\n\n")
	for _, c := range checks {
		fmt.Fprintf(&b, "- %s\n", c)
	}
	fmt.Fprintf(&b, "\nReproduce: `go run ./bench` from the repository root (this file is bench/results/LATEST.md); `go run ./bench -only cache-1m -o \"\"` for the 1M-token cache (one round, minutes).\n")
	return b.String()
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return runtime.GOARCH
}
