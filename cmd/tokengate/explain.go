package main

// `tokengate check --config FILE --token TOKEN [--route METHOD PATH]`: one
// real token through the real gate, and every value it was judged on.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/stack"
	"github.com/tokengate/tokengate/proxy"
)

// errRefused is check --token's verdict on a token the gate would not
// forward (exit status 1).
var errRefused = errors.New("the token would be refused")

// explainTimeout bounds the whole check --token run (discovery, JWKS,
// introspection).
const explainTimeout = 20 * time.Second

// checkToken decides on token exactly as the gate would for one request
// (the real verifiers, cache, route table and handler, with the upstream
// replaced by a recorder), then prints the values the decision compared.
// The token itself is never printed; its fingerprint is.
func checkToken(ctx context.Context, path, token, route string, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, explainTimeout)
	defer cancel()
	token = bareToken(token)
	if token == "" {
		return fmt.Errorf("%w: --token is empty", errUsage)
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
	b := stack.NewBuilder(stack.Options{})
	st, err := b.Verification(cfg)
	if err != nil {
		return err
	}
	sigs, err := b.Signatures(cfg)
	if err != nil {
		return err
	}
	d, err := decide(ctx, cfg, st, sigs, method, target, token)
	if err != nil {
		return err
	}
	e := &explainer{cfg: cfg, st: st, now: time.Now()}
	sum := sha256.Sum256([]byte(token))
	fmt.Fprintf(out, "config   %s\n", path)
	fmt.Fprintf(out, "request  %s %s → %s\n", method, target, describeRoute(d.route))
	e.explain(ctx, token, d)
	fmt.Fprintf(out, "token    %s, fingerprint %s (the token itself is not shown)\n", e.kind, hex.EncodeToString(sum[:4]))
	for _, l := range e.lines {
		fmt.Fprintf(out, "  %s\n", l)
	}
	if d.forwarded {
		fmt.Fprintln(out, "decision FORWARDED: the upstream would receive this request")
		return nil
	}
	fmt.Fprintf(out, "decision REFUSED: %d %s %q\n", d.status, d.code, d.desc)
	return errRefused
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
	if spec = strings.TrimSpace(spec); spec != "" {
		m, p, ok := strings.Cut(spec, " ")
		p = strings.TrimSpace(p)
		if !ok || m == "" || p == "" || (p[0] != '/' && !strings.HasPrefix(p, "http://") && !strings.HasPrefix(p, "https://")) {
			return "", "", fmt.Errorf(`%w: --route takes "METHOD PATH", e.g. --route "POST /webhooks/aftership"`, errUsage)
		}
		return strings.ToUpper(m), p, nil
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

// decision is what the gate did with the request.
type decision struct {
	forwarded  bool
	status     int
	code, desc string
	route      *config.Route // nil: no route matched
}

// decide sends one request through the handler the gate would serve, with
// a recorder in place of the upstream, and reads the answer.
func decide(ctx context.Context, cfg *config.Config, st *stack.Stack, sigs []proxy.SignatureVerifier, method, target, token string) (*decision, error) {
	fwd, err := proxy.NewForwarding(cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	var reached atomic.Bool
	upstream := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		reached.Store(true)
		return &http.Response{StatusCode: http.StatusNoContent, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
	})
	h, err := proxy.New(cfg, st.Verifier(), proxy.Options{Logger: zap.NewNop(), Transport: upstream, Forwarding: fwd, Signatures: sigs})
	if err != nil {
		return nil, err
	}
	req := httptest.NewRequestWithContext(ctx, method, target, strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	d := &decision{forwarded: reached.Load(), status: rec.Code, route: matchRoute(cfg, req)}
	var body struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if !d.forwarded && json.Unmarshal(rec.Body.Bytes(), &body) == nil {
		d.code, d.desc = body.Error, body.Description
	}
	return d, nil
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// matchRoute names the configured route of req (the handler's own
// decision is what counts; this only labels it).
func matchRoute(cfg *config.Config, req *http.Request) *config.Route {
	if i := proxy.MatchRoute(cfg, req.Method, req.Host, req.URL.Path); i >= 0 {
		return &cfg.Routes[i]
	}
	return nil
}

func describeRoute(r *config.Route) string {
	if r == nil {
		return "no route matches"
	}
	where := "path " + r.Path
	if r.PathPrefix != "" {
		where = "path_prefix " + r.PathPrefix
	}
	if r.Name != "" {
		return fmt.Sprintf("route %q (%s)", r.Name, where)
	}
	return "route " + where
}
