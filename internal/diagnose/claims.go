package diagnose

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/tokengate/tokengate/verifier"
)

// What the token's issuer checks, compared one value at a time: the
// signing key, the times (exp, nbf, iat against the clock skew) and the
// audience.

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
