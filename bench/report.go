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

// targets checks a row against the targets.
func targets(r row, bare row) []string {
	var out []string
	switch r.name {
	case "jwt-hot", "introspect-hot":
		min := 0.9
		if r.name == "jwt-hot" {
			min = 0.95 // with the access log on (tokengate at --log-level info)
		}
		out = append(out,
			verdict(r.ratio >= min, fmt.Sprintf("%s ≥ %.0f%% of bare req/s (access log at %s)", r.name, min*100, tokengateLogLevel), fmt.Sprintf("%.2f×", r.ratio)),
			verdict(r.p99-bare.p99 <= time.Millisecond, r.name+" p99 ≤ bare p99 + 1 ms", fmt.Sprintf("%v vs %v", r.p99.Round(time.Microsecond), bare.p99.Round(time.Microsecond))))
	case "introspect-cold":
		out = append(out, verdict(r.introspections <= r.distinct, "introspect-cold: at most one call per distinct token",
			fmt.Sprintf("%d calls for %d tokens", r.introspections, r.distinct)))
	case "burst":
		out = append(out, verdict(r.introspections == 1, "burst: exactly one introspection call", strconv.Itoa(r.introspections)))
	case "invalid-flood":
		out = append(out,
			verdict(r.jwks <= 4, "invalid-flood: unknown-kid refetches within the bucket: burst 3, then one per 30 s cooldown (plus the start-up fetch; runs are shorter than 30 s)", strconv.Itoa(r.jwks)),
			verdict(r.introspections <= 200, "invalid-flood: at most one introspection call per distinct bad opaque token (100 garbage + 100 unknown opaque) per negative TTL", strconv.Itoa(r.introspections)),
			verdict(r.wrong == 0, "invalid-flood: no wrong decision", strconv.Itoa(r.wrong)))
	case "egress":
		out = append(out,
			verdict(r.ratio >= 0.9, "egress (token added, access log at "+tokengateLogLevel+") ≥ 90% of bare req/s to the same upstream", fmt.Sprintf("%.2f×", r.ratio)),
			verdict(r.tokenRequests <= r.tokenAllowance, "egress: one token request per token lifetime (a refresh at 80 %, plus the first), none per request",
				fmt.Sprintf("%d token requests for %d app requests (at most %d allowed)", r.tokenRequests, r.requests, r.tokenAllowance)),
			verdict(r.waits == 0, "egress: no request waited for a token in steady state", strconv.Itoa(r.waits)))
	case "jwt-cold-es256":
		out = append(out, verdict(r.restRSSMB < 64, fmt.Sprintf("%.0f cached tokens in under 64 MB RSS", r.entries), fmt.Sprintf("%.1f MB", r.restRSSMB)))
	}
	return out
}

func render(o options, rows []row, checks []string) string {
	var b strings.Builder
	host, _ := os.Hostname()
	model := cpuModel()
	fmt.Fprintf(&b, "# tokengate benchmark\n\n")
	fmt.Fprintf(&b, "%s on %s (%d cores, %s), %s. Closed loop, %d connections, %v per scenario (cold scenarios run until their tokens are used, at most 4×), introspection endpoint delay %v. Every process on loopback; tokengate and the bare proxy run as separate processes, measured from /proc.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), host, runtime.NumCPU(), model, runtime.Version(), o.conns, o.duration, o.delay)
	fmt.Fprintf(&b, "| scenario | requests | req/s | vs bare | p50 | p99 | CPU s / 10k req | peak RSS MB | identity-provider calls | notes |\n")
	fmt.Fprintf(&b, "|---|---:|---:|---:|---:|---:|---:|---:|---|---|\n")
	for _, r := range rows {
		ratio := "-"
		if r.ratio > 0 {
			ratio = fmt.Sprintf("%.2f×", r.ratio)
		}
		fmt.Fprintf(&b, "| %s | %d | %.0f | %s | %v | %v | %.2f | %.1f | %s | %s |\n", r.name, r.requests, r.rps, ratio,
			r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.cpuPer10k, r.peakRSSMB, r.idpCalls(), strings.ReplaceAll(r.note, "|", "/"))
	}
	fmt.Fprintf(&b, "\n## Targets\n\n")
	for _, c := range checks {
		fmt.Fprintf(&b, "- %s\n", c)
	}
	fmt.Fprintf(&b, "\nReproduce: `go run ./bench` from the repository root (this file is bench/results/LATEST.md).\n")
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
