package verifier

import (
	"slices"
	"time"
)

// claimRules are the audience and time rules that the claims of a token
// must meet once its issuer vouched for it (a verified signature, an
// active introspection answer). JWT and introspection issuers share them.
type claimRules struct {
	// audiences accepted; a token must name at least one in "aud",
	// unless anyAudience (SkipAudienceCheck).
	audiences   []string
	anyAudience bool
	// skew is tolerated on exp, nbf and iat.
	skew time.Duration
	// needExpiry refuses a token without "exp" (JWT: a token that never
	// expires); an introspection answer may omit it (RFC 7662 §2.2).
	needExpiry bool
	// issuedAt refuses an "iat" in the future (JWT).
	issuedAt bool
}

// checkTimes refuses a token that has expired (RFC 7519 §4.1.4: now must
// be before exp, plus the skew), is not valid yet, or was issued in the
// future.
func (r *claimRules) checkTimes(c *claims, now time.Time) error {
	switch {
	case c.expiry.IsZero() && r.needExpiry:
		return invalid("token has no expiry", nil)
	case !c.expiry.IsZero() && !now.Before(c.expiry.Add(r.skew)):
		return invalid("token expired", nil)
	case !c.notBefore.IsZero() && c.notBefore.After(now.Add(r.skew)):
		return invalid("token not yet valid", nil)
	case r.issuedAt && !c.issuedAt.IsZero() && c.issuedAt.After(now.Add(r.skew)):
		return invalid("token issued in the future", nil)
	}
	return nil
}

// checkAudience refuses a token that names none of the audiences.
func (r *claimRules) checkAudience(c *claims) error {
	if r.anyAudience || slices.ContainsFunc(c.audience, func(a string) bool { return slices.Contains(r.audiences, a) }) {
		return nil
	}
	return invalid("audience not accepted", nil)
}
