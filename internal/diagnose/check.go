package diagnose

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/stack"
	"github.com/tokengate/tokengate/internal/telemetry"
)

// probeTimeout bounds each issuer probe of `tokengate check`.
const probeTimeout = 10 * time.Second

// Check validates the configuration at path and probes every well-formed
// issuer (discovery, JWKS, introspection credentials) and egress entry,
// then prints a summary and every problem found to out. The error says
// how many problems there were; nil: none.
func Check(ctx context.Context, path string, out io.Writer) error {
	cfg, cerr := config.LoadForCheck(path, config.Options{})
	if cfg == nil {
		return cerr
	}
	problems, badPaths := configProblems(cerr)
	problems = append(problems, tracingProblems(cfg)...)
	fmt.Fprintf(out, "config   %s\n", path)
	if !cfg.Receiving() {
		fmt.Fprintf(out, "calling side only (admin %s)\n", cfg.AdminListen)
		problems = append(problems, checkSharedRedis(ctx, cfg, badPaths, out)...)
		problems = append(problems, checkEgress(ctx, cfg, badPaths, out)...)
		return report(path, problems, out)
	}
	fmt.Fprintf(out, "listen   %s (admin %s) → upstream %s\n", cfg.Listen, cfg.AdminListen, cfg.Upstream.URL)
	tlsLines, tlsProblems := checkTLS(ctx, cfg, time.Now())
	for _, l := range tlsLines {
		fmt.Fprintln(out, l)
	}
	problems = append(problems, tlsProblems...)
	problems = append(problems, checkIssuers(ctx, cfg, badPaths, out)...)
	printRoutes(cfg, out)
	if cerr == nil && len(tlsProblems) == 0 {
		problems = append(problems, checkBuild(cfg)...)
	}
	for _, w := range unboundSubjects(cfg) {
		fmt.Fprintln(out, "  warning: "+w)
	}
	problems = append(problems, checkReplayStore(ctx, cfg, badPaths)...)
	if !notProbed("queue.store", badPaths) {
		problems = append(problems, checkQueueStore(ctx, cfg, out)...)
	}
	problems = append(problems, checkSharedRedis(ctx, cfg, badPaths, out)...)
	problems = append(problems, checkEgress(ctx, cfg, badPaths, out)...)
	if w := checkUpstreamListening(ctx, cfg.Upstream.URL); w != "" {
		fmt.Fprintln(out, "  warning: "+w)
	}
	return report(path, problems, out)
}

// tracingProblems checks telemetry.tracing with the OTEL_* variables of
// this environment as the gate's start does: one problem per variable.
func tracingProblems(cfg *config.Config) []string {
	err := telemetry.CheckTracing(cfg.Telemetry.Tracing, os.Getenv)
	if err == nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(err.Error(), "\n") {
		out = append(out, "tracing: "+l)
	}
	return out
}

// configProblems lists the configuration's own problems, and the YAML
// paths they are at (not probed: probing them is pointless).
func configProblems(cerr error) (problems []string, badPaths map[string]bool) {
	badPaths = map[string]bool{}
	var ce *config.Error
	if errors.As(cerr, &ce) {
		for _, e := range ce.Errs {
			problems = append(problems, e.Error())
			var fe *config.FieldError
			if errors.As(e, &fe) {
				badPaths[fe.Path] = true
			}
		}
	}
	return problems, badPaths
}

// notProbed: a configuration problem under prefix makes probing pointless.
func notProbed(prefix string, bad map[string]bool) bool {
	for p := range bad {
		if p == prefix || strings.HasPrefix(p, prefix+".") {
			return true
		}
	}
	return false
}

// checkBuild builds the receiving side exactly as serve does (verifiers,
// the token endpoint and its signing keys, signature verifiers, the
// handler), without a network call or a listener, so that check refuses
// what serve would refuse.
func checkBuild(cfg *config.Config) []string {
	b := stack.NewBuilder(stack.Options{})
	st, err := b.Build(cfg, nil)
	b.AbortReplay() // check serves nothing: close a Redis client it made
	if err != nil {
		return []string{fmt.Sprintf("serve would refuse this configuration: %v", err)}
	}
	st.Stop()
	return nil
}

// checkUpstreamListening warns when nothing accepts connections at the
// upstream's address: not an error (the receiver may start later), but
// every request would get 502 until it does.
func checkUpstreamListening(ctx context.Context, upstream string) string {
	u, err := url.Parse(upstream)
	if err != nil || u.Host == "" {
		return ""
	}
	host := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(dctx, "tcp", host)
	if err != nil {
		return fmt.Sprintf("upstream %s does not accept connections (%v): requests would get 502 until it does", host, err)
	}
	_ = conn.Close()
	return ""
}

// report prints the problems found, or OK.
func report(path string, problems []string, out io.Writer) error {
	if len(problems) > 0 {
		fmt.Fprintf(out, "\n%d problem(s):\n", len(problems))
		for _, p := range problems {
			fmt.Fprintf(out, "  %s\n", p)
		}
		return fmt.Errorf("%s: %d problem(s)", path, len(problems))
	}
	fmt.Fprintln(out, "\nOK")
	return nil
}
