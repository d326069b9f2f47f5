package verifier

import (
	"context"
	"encoding/json"
	"errors"
)

// Set dispatches a token to the one issuer that may verify it: a JWT goes
// to the JWT issuer named by its (unverified) "iss" and is checked with that
// issuer's keys only; anything else goes to the introspection issuer, if
// one is configured.
type Set struct {
	byIssuer    map[string]Verifier
	single      Verifier // the only JWT issuer, when there is exactly one
	introspect  Verifier
	introIssuer string // when set, the only "iss" a JWT may carry to be introspected
}

var _ Verifier = (*Set)(nil)

// NewSet builds a dispatcher. jwt maps each "iss" value to its verifier;
// introspect may be nil. A JWT whose "iss" names no JWT issuer is sent to
// introspection only when introIssuer is empty or equals that "iss": tokens
// of unrelated issuers are refused locally rather than shown to a third
// party's introspection endpoint.
func NewSet(jwt map[string]Verifier, introspect Verifier, introIssuer string) *Set {
	s := &Set{byIssuer: jwt, introspect: introspect, introIssuer: introIssuer}
	if len(jwt) == 1 && introspect == nil {
		for _, v := range jwt {
			s.single = v
		}
	}
	return s
}

// Verify picks the issuer for token and verifies it there.
func (s *Set) Verify(ctx context.Context, token string) (*Principal, error) {
	if len(token) > MaxTokenSize {
		return nil, invalid("token too large", nil)
	}
	if s.single != nil {
		return s.single.Verify(ctx, token) // it checks "iss" itself
	}
	jws, iss, ok := unverifiedIssuer(token)
	if ok {
		if v, found := s.byIssuer[iss]; found {
			return v.Verify(ctx, token)
		}
	}
	if jws && s.introIssuer != "" && (!ok || iss != s.introIssuer) {
		// A JWT of no configured issuer is refused here rather than shown
		// to a third party's introspection endpoint.
		if !ok {
			return nil, invalid("malformed claims", nil)
		}
		return nil, invalid("issuer not accepted", nil)
	}
	if s.introspect != nil {
		return s.introspect.Verify(ctx, token)
	}
	return nil, invalid("issuer not accepted", nil)
}

// unverifiedIssuer reads "iss" from a compact JWS without verifying it; it
// only chooses which keys will verify the token. jws says whether the token
// looks like a JWS at all (three parts, a JSON object header).
func unverifiedIssuer(token string) (jws bool, iss string, ok bool) {
	_, payload, err := splitJWS(token)
	if err != nil {
		return errors.Is(err, errPayload), "", false
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if json.Unmarshal(payload, &c) != nil || c.Iss == "" {
		return true, "", false
	}
	return true, c.Iss, true
}
