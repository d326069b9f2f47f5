// Command bench measures tokengate against a bare httputil.ReverseProxy in
// the same run, on loopback, with real identity providers.
//
//	go run ./bench                 # every scenario, writes bench/results/LATEST.md
//	go run ./bench -smoke          # short rounds per scenario (CI: proves it runs)
//	go run ./bench -only cache-1m -o ""  # 1,000,000 cached tokens (minutes)
//	go run ./bench soak -d 10m     # bounded soak: decisions, 5xx, RSS, goroutines
//	go run ./bench slow -n 3000    # slow-body connections: RSS bound, denials closed at once
//	go run ./bench queued -d 20s -down 2m -kill 10s -store file   # queued delivery: throughput, receiver down, kill -9
//
// Run it from the repository root: it builds ./cmd/tokengate.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "bare-proxy":
			fs := flag.NewFlagSet("bare-proxy", flag.ExitOnError)
			listen := fs.String("listen", "127.0.0.1:0", "")
			upstream := fs.String("upstream", "", "")
			_ = fs.Parse(args[1:])
			return runBareProxy(ctx, *listen, *upstream)
		case "soak":
			fs := flag.NewFlagSet("soak", flag.ExitOnError)
			d := fs.Duration("d", 10*time.Minute, "soak duration")
			conns := fs.Int("c", 8, "connections")
			rotate := fs.Duration("rotate", time.Minute, "identity provider key rotation period")
			_ = fs.Parse(args[1:])
			return soak(ctx, *d, *conns, *rotate)
		case "slow":
			fs := flag.NewFlagSet("slow", flag.ExitOnError)
			n := fs.Int("n", 3000, "connections")
			hold := fs.Duration("hold", 10*time.Second, "how long the connections are held open")
			allowed := fs.Float64("allowed", 0.5, "fraction of connections that carry a valid token")
			_ = fs.Parse(args[1:])
			return slowConns(ctx, *n, *hold, *allowed)
		case "queued":
			fs := flag.NewFlagSet("queued", flag.ExitOnError)
			var o queuedOpts
			fs.DurationVar(&o.d, "d", 20*time.Second, "duration of each throughput round; load before and after the receiver outage")
			fs.DurationVar(&o.down, "down", 2*time.Minute, "how long the receiver is down")
			fs.DurationVar(&o.kill, "kill", 10*time.Second, "interval between kill -9s of the gate")
			fs.IntVar(&o.kills, "kills", 3, "kill -9s of the gate")
			fs.IntVar(&o.rounds, "rounds", 3, "throughput rounds, each against the bare proxy")
			fs.IntVar(&o.conns, "c", 32, "connections of the closed-loop generator")
			fs.StringVar(&o.sweep, "sweep", "", "connection counts for the throughput rounds, comma-separated (e.g. 32,64,128): the rounds at each, then each side's best median; empty: -c")
			fs.IntVar(&o.concurrency, "concurrency", 4, "the queued route's delivery concurrency; 0: the connection count of the run (the receiver then sees at most as many requests at once as the bare proxy sends it)")
			fs.Float64Var(&o.rate, "rate", 0, "steady offered load (req/s) of the receiver-down and kill runs; 0: closed loop, as fast as the gate answers")
			fs.Float64Var(&o.cpuRate, "cpu-rate", 0, "steady offered load (req/s) of the throughput rounds, the same for the queued route and the bare proxy, to compare their CPU per message; 0: closed loop")
			fs.StringVar(&o.store, "store", "file", "queue store: file or redis (a redis-server the bench starts, appendfsync always)")
			fs.DurationVar(&o.drain, "drain", 3*time.Minute, "longest wait for the backlog to drain")
			fs.StringVar(&o.only, "only", "", "run only these measurements: throughput, down, kill (comma-separated; empty: all)")
			fs.StringVar(&o.out, "o", "", "also write the reports here (e.g. bench/results/QUEUED.md)")
			_ = fs.Parse(args[1:])
			return queuedBench(ctx, o)
		}
	}
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	smoke := fs.Bool("smoke", false, "short rounds and small token sets: proves the harness runs, measures nothing")
	d := fs.Duration("d", 3*time.Second, "duration of each timed round (tokengate, then the bare proxy)")
	rounds := fs.Int("rounds", 3, "rounds per scenario, each against the bare proxy (the table shows medians)")
	conns := fs.Int("c", 32, "connections of the closed-loop generator")
	delay := fs.Duration("introspection-delay", 2*time.Millisecond, "latency of the test introspection endpoint")
	out := fs.String("o", "bench/results/LATEST.md", "where to write the table (empty: nowhere)")
	only := fs.String("only", "", "run only the scenarios whose name contains this")
	memlimit := fs.String("tokengate-gomemlimit", "", "GOMEMLIMIT for the tokengate process only (e.g. 48MiB)")
	fs.StringVar(&tokengateLogLevel, "tokengate-log-level", "info", "tokengate's --log-level (info: one access-log line per request, as users run it)")
	_ = fs.Parse(args)
	if *memlimit != "" {
		tokengateEnv = append(tokengateEnv, "GOMEMLIMIT="+*memlimit)
	}
	o := options{duration: *d, rounds: max(*rounds, 1), conns: *conns, delay: *delay, smoke: *smoke, only: *only,
		rsTokens: 20_000, coldTokens: 100_000, bigTokens: 1_000_000, coldOpaque: 3_000}
	if *smoke {
		o.duration, o.rsTokens, o.coldTokens, o.bigTokens, o.coldOpaque = 300*time.Millisecond, 300, 2_000, 5_000, 300
	}
	return benchmark(ctx, o, *out)
}
