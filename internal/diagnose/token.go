package diagnose

// `tokengate check --config FILE --token TOKEN [--route METHOD PATH]`: one
// real token through the real gate, and every value it was judged on.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/tokengate/tokengate/config"
)

// ErrRefused is Token's verdict on a token the gate would not forward.
var ErrRefused = errors.New("the token would be refused")

// ErrUsage marks a command-line value Token cannot use: an empty token, a
// --route that is not "METHOD PATH".
var ErrUsage = errors.New("usage")

// explainTimeout bounds the whole check --token run (discovery, JWKS,
// introspection).
const explainTimeout = 20 * time.Second

// Token decides on token exactly as the gate would for one request (the
// real verifiers, cache, route table and handler, with the upstream
// replaced by a recorder), then prints to out the values the decision
// compared. route is "METHOD PATH" (a full URL also gives the Host); ""
// takes the first route that requires a token. The token itself is never
// printed; its fingerprint is. nil: the request would be forwarded;
// ErrRefused: it would not.
func Token(ctx context.Context, path, token, route string, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, explainTimeout)
	defer cancel()
	token = bareToken(token)
	if token == "" {
		return fmt.Errorf("%w: --token is empty", ErrUsage)
	}
	cfg, err := config.Load(path, config.Options{})
	if err != nil {
		return err
	}
	if !cfg.Receiving() {
		return fmt.Errorf("%s configures only the calling side (egress): there is no route to check a token against", path)
	}
	method, target, err := pickRoute(cfg, route)
	if err != nil {
		return err
	}
	st, sigs, err := build(cfg, &claimRecorder{})
	if err != nil {
		return err
	}
	req := httptest.NewRequestWithContext(ctx, method, target, strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	d, err := decide(cfg, st, sigs, req)
	if err != nil {
		return err
	}
	e := &explainer{cfg: cfg, st: st, now: time.Now()}
	sum := sha256.Sum256([]byte(token))
	fmt.Fprintf(out, "config   %s\n", path)
	fmt.Fprintf(out, "request  %s %s → %s\n", method, target, describeRoute(d.route))
	e.explain(ctx, token, d)
	fmt.Fprintf(out, "token    %s, fingerprint %s (the token itself is not shown)\n", e.kind, hex.EncodeToString(sum[:4]))
	for _, f := range e.findings {
		fmt.Fprintf(out, "  %s\n", f.line())
	}
	return d.verdict(out, e.limited, "the token is good, but its sender is past the route's rate_limit right now", ErrRefused)
}

// bareToken accepts a token as pasted: with or without "Bearer " and
// surrounding white space.
func bareToken(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 7 && strings.EqualFold(s[:7], "bearer ") {
		s = strings.TrimSpace(s[7:])
	}
	return s
}

// pickRoute parses --route "METHOD PATH" (a full URL also gives the Host);
// without it, the first route that requires a token is used.
func pickRoute(cfg *config.Config, spec string) (method, target string, err error) {
	if strings.TrimSpace(spec) != "" {
		return parseRouteSpec(spec)
	}
	for _, r := range cfg.Routes {
		if !r.NeedsToken() {
			continue
		}
		method = http.MethodPost
		if len(r.Methods) > 0 {
			method = r.Methods[0]
		}
		target = r.Path
		if r.PathPrefix != "" {
			target = r.PathPrefix
		}
		if r.Host != "" {
			target = "http://" + r.Host + target
		}
		return method, target, nil
	}
	return "", "", errors.New("no route requires a token; name one with --route METHOD PATH")
}

// parseRouteSpec parses --route "METHOD PATH" (a full URL also gives the
// Host).
func parseRouteSpec(spec string) (method, target string, err error) {
	m, p, ok := strings.Cut(strings.TrimSpace(spec), " ")
	p = strings.TrimSpace(p)
	if !ok || m == "" || p == "" || (p[0] != '/' && !strings.HasPrefix(p, "http://") && !strings.HasPrefix(p, "https://")) {
		return "", "", fmt.Errorf(`%w: --route takes "METHOD PATH", e.g. --route "POST /webhooks/aftership"`, ErrUsage)
	}
	return strings.ToUpper(m), p, nil
}
