package verifier

import (
	"testing"
	"time"
)

// TestClaimRulesAtTheirBoundaries: the one time check of JWT and
// introspection issuers. A token is valid strictly before exp (plus the
// skew: RFC 7519 §4.1.4), from nbf (minus the skew) on; a JWT needs an exp
// and may not be issued in the future; an introspection answer (no skew)
// may omit exp and carry any iat.
func TestClaimRulesAtTheirBoundaries(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	skew := 30 * time.Second
	jwt := claimRules{skew: skew, needExpiry: true, issuedAt: true}
	intro := claimRules{}
	tests := []struct {
		name  string
		rules claimRules
		c     claims
		want  string
	}{
		{"jwt: a nanosecond before exp+skew", jwt, claims{expiry: now.Add(-skew + time.Nanosecond)}, ""},
		{"jwt: at exp+skew", jwt, claims{expiry: now.Add(-skew)}, "token expired"},
		{"jwt: no exp", jwt, claims{}, "token has no expiry"},
		{"jwt: nbf at now+skew", jwt, claims{expiry: now.Add(time.Hour), notBefore: now.Add(skew)}, ""},
		{"jwt: nbf past now+skew", jwt, claims{expiry: now.Add(time.Hour), notBefore: now.Add(skew + time.Nanosecond)}, "token not yet valid"},
		{"jwt: iat past now+skew", jwt, claims{expiry: now.Add(time.Hour), issuedAt: now.Add(skew + time.Nanosecond)}, "token issued in the future"},
		{"introspection: a nanosecond before exp", intro, claims{expiry: now.Add(time.Nanosecond)}, ""},
		{"introspection: at exp", intro, claims{expiry: now}, "token expired"},
		{"introspection: no exp", intro, claims{}, ""},
		{"introspection: nbf in the future", intro, claims{notBefore: now.Add(time.Nanosecond)}, "token not yet valid"},
		{"introspection: iat in the future", intro, claims{issuedAt: now.Add(time.Hour)}, ""},
	}
	for _, tc := range tests {
		if got := Reason(tc.rules.checkTimes(&tc.c, now)); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
