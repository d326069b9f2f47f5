package diagnose

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/stack"
	"github.com/tokengate/tokengate/proxy"
	"github.com/tokengate/tokengate/verifier"
)

// The gate's decision on check --token's one request, the route it
// matched, and how the verified token compares with the route's policy.

// decision is what the gate did with the request.
type decision struct {
	forwarded  bool
	status     int
	code, desc string
	route      *config.Route // nil: no route matched
}

// verdict prints the decision line: FORWARDED (nil), or REFUSED with
// the status the gate sends (refused). limited: the request would pass
// but its sender is past the route's rate_limit right now (why says so).
func (d *decision) verdict(out io.Writer, limited bool, why string, refused error) error {
	switch {
	case d.forwarded && limited:
		fmt.Fprintf(out, "decision REFUSED: 429 rate_limited: %s\n", why)
		return refused
	case d.forwarded:
		fmt.Fprintln(out, "decision FORWARDED: the upstream would receive this request")
		return nil
	}
	fmt.Fprintf(out, "decision REFUSED: %d %s %q\n", d.status, d.code, d.desc)
	return refused
}

// decide sends req through the handler the gate would serve, with a
// recorder in place of the upstream, and reads the answer: the status
// and error the proxy's one mapping of errors chose.
func decide(cfg *config.Config, st *stack.Stack, sigs []proxy.SignatureVerifier, req *http.Request) (*decision, error) {
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

// RoundTrip calls f.
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

// explainRoute compares a verified principal with the route's policy.
func (e *explainer) explainRoute(p *verifier.Principal, d *decision) {
	r := d.route
	if r == nil {
		e.no("no route matches this method and path")
		return
	}
	if r.Public {
		e.ok("the route is public: no token needed")
		return
	}
	q := r.Require
	if len(q.Issuers) > 0 {
		if slices.Contains(q.Issuers, p.Source) {
			e.ok("issuer %q is among the route's issuers %q", p.Source, q.Issuers)
		} else {
			e.no("issuer %q is not among the route's issuers %q", p.Source, q.Issuers)
		}
	}
	granted := fmt.Sprintf("[%s]", strings.Join(p.Scopes, " "))
	if len(q.Scopes) > 0 {
		var missing []string
		for _, s := range q.Scopes {
			if !p.HasScope(s) {
				missing = append(missing, s)
			}
		}
		if len(missing) == 0 {
			e.ok("scope: token grants %s, route needs [%s]", granted, strings.Join(q.Scopes, " "))
		} else {
			e.no("scope: token grants %s, route needs [%s] (missing: %s)", granted, strings.Join(q.Scopes, " "), strings.Join(missing, " "))
		}
	}
	if len(q.AnyScopes) > 0 {
		if slices.ContainsFunc(q.AnyScopes, p.HasScope) {
			e.ok("scope: token grants %s, route needs one of [%s]", granted, strings.Join(q.AnyScopes, " "))
		} else {
			e.no("scope: token grants %s, route needs one of [%s]", granted, strings.Join(q.AnyScopes, " "))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(q.Claims)) {
		if proxy.ClaimMatches(p.Claims[k], q.Claims[k]) {
			e.ok("claim %q: token has %v, route needs %q", k, p.Claims[k], q.Claims[k])
		} else {
			e.no("claim %q: token has %v, route needs %q", k, p.Claims[k], q.Claims[k])
		}
	}
	if q.ClientCert != nil {
		e.no("the route also requires a TLS client certificate; check cannot present one")
	}
}
