package main

// The explanation half of `tokengate check --token`: each value the
// decision compared, against the configuration, one line each.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/stack"
	"github.com/tokengate/tokengate/proxy"
	"github.com/tokengate/tokengate/verifier"
)

// explainer collects the compared values, one line each, "✓" or "✗".
type explainer struct {
	cfg   *config.Config
	st    *stack.Stack
	now   time.Time
	kind  string
	lines []string
}

func (e *explainer) ok(format string, a ...any) {
	e.lines = append(e.lines, "✓ "+fmt.Sprintf(format, a...))
}

func (e *explainer) no(format string, a ...any) {
	e.lines = append(e.lines, "✗ "+fmt.Sprintf(format, a...))
}

// explain fills kind and lines: the issuer chosen, then what that issuer
// checks (keys, times, audience) and what the route requires.
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
	}
	if !d.forwarded && !e.anyRefusal() {
		e.no("the gate answered %d: %s", d.status, d.desc)
	}
}

func (e *explainer) anyRefusal() bool {
	return slices.ContainsFunc(e.lines, func(l string) bool { return strings.HasPrefix(l, "✗") })
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

func (e *explainer) explainKeys(ctx context.Context, j *verifier.JWT, kid string, generated bool) {
	kids, fetched, err := j.KeyIDs(ctx)
	if err != nil {
		e.no("the issuer's keys could not be fetched: %v", err)
		return
	}
	where := "the token endpoint's keys"
	if !fetched.IsZero() {
		where = fmt.Sprintf("the JWKS fetched %d s ago", int(e.now.Sub(fetched).Seconds()))
	}
	switch {
	case kid == "" && len(kids) > 0:
		e.ok("no kid: every key in %s is tried", where)
	case slices.Contains(kids, kid):
		e.ok("kid %q is in %s", kid, where)
	case generated:
		e.no("kid %q not in %s %q: token_endpoint has no signing_key_files, so this check generated its own throw-away key, and so does every tokengate process; set signing_key_files to check (and share) its tokens", kid, where, kids)
	default:
		e.no("kid %q not in %s (it holds %q)", kid, where, kids)
	}
}

func (e *explainer) explainTimes(info *verifier.TokenInfo, skew time.Duration) {
	switch exp := info.Expiry; {
	case exp.IsZero():
		e.no("exp: the token has none; tokens that never expire are refused")
	case !e.now.Before(exp.Add(skew)): // as the verifier: valid only strictly before exp+skew
		e.no("exp %s: expired %s ago (clock skew allowed: %s)", exp.Format(time.RFC3339), e.now.Sub(exp).Round(time.Second), skew)
	default:
		e.ok("exp %s (in %s)", exp.Format(time.RFC3339), exp.Sub(e.now).Round(time.Second))
	}
	if nbf := info.NotBefore; !nbf.IsZero() && nbf.After(e.now.Add(skew)) {
		e.no("nbf %s: not valid for another %s (clock skew allowed: %s)", nbf.Format(time.RFC3339), nbf.Sub(e.now).Round(time.Second), skew)
	}
	if iat := info.IssuedAt; !iat.IsZero() && iat.After(e.now.Add(skew)) {
		e.no("iat %s: issued %s in the future; is a clock wrong? (clock skew allowed: %s)", iat.Format(time.RFC3339), iat.Sub(e.now).Round(time.Second), skew)
	}
}

// explainAudience compares aud with the issuer's audiences, naming the
// providers that leave aud empty unless the client asks for one.
func (e *explainer) explainAudience(aud, want []string, skip bool, issuer string) {
	switch {
	case skip:
		e.ok("aud %q: not checked (insecure_skip_audience_check)", aud)
	case len(aud) == 0:
		e.no("aud [] — the token names no audience; issuer %q needs one of %q; Hydra and Auth0 add aud only when the client requests audience=... in its token request (and, in Hydra, the client is allowed that audience)", issuer, want)
	case slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(want, a) }):
		e.ok("aud %q includes one of %q", aud, want)
	default:
		e.no("aud %q — none of %q that issuer %q accepts", aud, want, issuer)
	}
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
