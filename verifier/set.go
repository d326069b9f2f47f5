package verifier

import (
	"context"
	"errors"
	"slices"
)

// Issuer is one configured issuer as a Set sees it.
type Issuer struct {
	// Name is the configured name routes refer to (Principal.Source).
	Name string
	// Iss is the exact "iss" of its tokens; for the introspection issuer
	// it may be empty (then no JWT is ever introspected).
	Iss string
	// Verifier checks the token. A *JWT is handed the token as the Set
	// already decoded it.
	Verifier Verifier
}

// Set dispatches a token to the one issuer that may verify it: a JWT goes
// to the JWT issuer named by its (unverified) "iss" and is checked with that
// issuer's keys only; an opaque token goes to the introspection issuer, if
// one is configured. A JWT whose "iss" names no configured issuer never
// leaves the process. VerifyFor further limits the issuers to a route's.
type Set struct {
	byIss      map[string]*Issuer
	introspect *Issuer
}

var _ Verifier = (*Set)(nil)

// NewSet builds a dispatcher over JWT issuers and an optional
// introspection issuer.
func NewSet(jwt []Issuer, introspect *Issuer) *Set {
	s := &Set{byIss: make(map[string]*Issuer, len(jwt)), introspect: introspect}
	for i := range jwt {
		s.byIss[jwt[i].Iss] = &jwt[i]
	}
	return s
}

// Verify picks the issuer for token among all configured ones.
func (s *Set) Verify(ctx context.Context, token string) (*Principal, error) {
	return s.VerifyFor(ctx, token, nil)
}

// reasonMalformedToken: a token that is not a JWT where no introspection
// issuer is configured to take opaque tokens.
const reasonMalformedToken = "malformed token: not a JWT, and no introspection issuer takes opaque tokens"

// errNotForRoute: the token's issuer is configured, but not accepted by the
// route; it is not shown to that issuer at all.
var errNotForRoute = errors.New("issuer not accepted on this route")

// VerifyFor verifies token with an issuer named in issuers (nil: any). A
// token of an issuer the route does not accept is refused without asking
// anyone: an opaque token on a JWT-only route costs no introspection call.
func (s *Set) VerifyFor(ctx context.Context, token string, issuers []string) (*Principal, error) {
	if len(token) > MaxTokenSize {
		return nil, invalid("token too large", nil)
	}
	t, err := parseJWT(token)
	var is *Issuer
	switch {
	case errors.Is(err, errNotJWS):
		is, t = s.introspect, nil // an opaque token
	case err != nil:
		return nil, err
	default:
		is = s.byIss[t.claims.issuer]
		if in := s.introspect; is == nil && in != nil && in.Iss != "" && t.claims.issuer == in.Iss {
			is = in
		}
	}
	if is == nil {
		if t == nil { // neither a JWT nor a token anyone here can introspect
			return nil, invalid(reasonMalformedToken, nil)
		}
		return nil, invalid("issuer not accepted", nil)
	}
	if issuers != nil && !slices.Contains(issuers, is.Name) {
		return nil, invalid("token not accepted on this route", errNotForRoute)
	}
	if j, ok := is.Verifier.(*JWT); ok && t != nil {
		return j.verifyParsed(ctx, t)
	}
	return is.Verifier.Verify(ctx, token)
}
