package diagnose

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/stack"
	"github.com/tokengate/tokengate/verifier"
)

// explainer is the explanation of check --token: the token's kind, and
// each value the decision compared with the configuration, a finding
// each, in the order the gate checks them: the issuer chosen, then what
// that issuer checks (keys, times, audience), then the route's policy.
type explainer struct {
	cfg      *config.Config
	st       *stack.Stack
	now      time.Time
	kind     string
	findings []finding
	// limited: the sender is past the route's rate limit right now.
	limited bool
}

func (e *explainer) ok(format string, a ...any) {
	e.findings = append(e.findings, finding{summary: fmt.Sprintf(format, a...)})
}

func (e *explainer) no(format string, a ...any) {
	e.findings = append(e.findings, finding{problem: fmt.Sprintf(format, a...)})
}

func (e *explainer) anyRefusal() bool {
	return slices.ContainsFunc(e.findings, func(f finding) bool { return f.problem != "" })
}

// explain fills kind and findings for token and the gate's decision d.
func (e *explainer) explain(ctx context.Context, token string, d *decision) {
	info, err := verifier.Inspect(token)
	if err != nil {
		e.kind = "a JWS with unreadable claims"
		e.no("claims: %v", err)
		return
	}
	// The principal as the gate's cache holds it after the decision (a
	// JWT is checked again locally; an introspection answer is cached).
	p, verr := e.st.Cache().Verify(ctx, token)
	if !info.JWT {
		e.explainOpaque(p, verr)
	} else if !e.explainJWT(ctx, info) {
		return
	}
	switch {
	case errors.Is(verr, verifier.ErrUnavailable):
		e.no("the identity provider could not be asked: %v", verr)
	case verr != nil:
		if !e.anyRefusal() {
			e.no("%v", verr)
		}
	default:
		e.explainRoute(p, d)
		e.explainRateLimit(ctx, p, d.route)
	}
	if !d.forwarded && !e.anyRefusal() {
		e.no("the gate answered %d: %s", d.status, d.desc)
	}
}

func (e *explainer) explainOpaque(p *verifier.Principal, verr error) {
	var in *config.Issuer
	for i := range e.cfg.Issuers {
		if e.cfg.Issuers[i].IsIntrospection() {
			in = &e.cfg.Issuers[i]
		}
	}
	if in == nil {
		e.kind = "opaque (not a JWT)"
		e.no("the token is not a JWT and no introspection issuer is configured: only an introspection endpoint could vouch for it")
		return
	}
	e.kind = fmt.Sprintf("opaque (not a JWT), introspected by issuer %q at %s", in.Name, in.Introspection.URL)
	if verr != nil {
		return
	}
	e.ok("introspection: active, iss %q", p.Issuer)
	e.explainAudience(p.Audience, in.Audiences, in.InsecureSkipAudienceCheck, in.Name)
	if !p.Expiry.IsZero() {
		e.ok("exp %s (in %s)", p.Expiry.UTC().Format(time.RFC3339), p.Expiry.Sub(e.now).Round(time.Second))
	}
}

// explainJWT compares a JWT's header and claims with its issuer's
// configuration; false when no issuer takes the token at all.
func (e *explainer) explainJWT(ctx context.Context, info *verifier.TokenInfo) bool {
	e.kind = fmt.Sprintf("JWT, alg %s, kid %q", info.Alg, info.KeyID)
	if info.Type != "" {
		e.kind += fmt.Sprintf(", typ %q", info.Type)
	}
	is, j := e.issuerOf(info.Issuer)
	if is == nil {
		var configured []string
		for _, c := range e.cfg.Issuers {
			if !c.IsIntrospection() || c.Issuer != "" {
				configured = append(configured, c.Issuer)
			}
		}
		if te := e.cfg.TokenEndpoint; te != nil {
			configured = append(configured, te.Issuer)
		}
		if len(configured) == 0 {
			e.no("iss %q: no JWT issuer is configured", info.Issuer)
		}
		for _, c := range configured {
			e.no("iss %q ≠ configured %q (%s)", info.Issuer, c, howDiffer(info.Issuer, c))
		}
		return false
	}
	e.ok("iss %q is issuer %q", info.Issuer, is.name)
	if j == nil { // a JWT handed to the introspection issuer
		return true
	}
	e.explainKeys(ctx, j, info.KeyID, is.generated)
	e.explainTimes(info, j.ClockSkew())
	e.explainAudience(info.Audience, is.audiences, is.skipAud, is.name)
	return true
}

// issuerInfo is what the explanation needs of a configured issuer.
type issuerInfo struct {
	name      string
	audiences []string
	skipAud   bool
	generated bool // the token endpoint's throw-away key: made by this run
}

// issuerOf finds the configured issuer whose iss is exactly iss, and its
// JWT verifier (nil for the introspection issuer).
func (e *explainer) issuerOf(iss string) (*issuerInfo, *verifier.JWT) {
	for _, j := range e.st.JWTs() {
		if j.Issuer() == iss {
			for _, c := range e.cfg.Issuers {
				if c.Name == j.Name() {
					return &issuerInfo{name: c.Name, audiences: c.Audiences, skipAud: c.InsecureSkipAudienceCheck}, j
				}
			}
		}
	}
	if te := e.cfg.TokenEndpoint; te != nil && te.Issuer == iss {
		return &issuerInfo{name: te.Name, audiences: []string{te.Audience}, generated: len(te.SigningKeyFiles) == 0}, e.st.Embedded()
	}
	for _, c := range e.cfg.Issuers {
		if c.IsIntrospection() && c.Issuer != "" && c.Issuer == iss {
			return &issuerInfo{name: c.Name, audiences: c.Audiences, skipAud: c.InsecureSkipAudienceCheck}, nil
		}
	}
	return nil, nil
}
