package verifier

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"time"
)

// Verifier checks one bearer token and says who presented it.
//
// A rejected token yields an error that matches ErrInvalidToken; an identity
// provider that cannot be asked yields one that matches ErrUnavailable. The
// two must never be confused: a sender gives up after a 401 but retries a
// 503.
type Verifier interface {
	Verify(ctx context.Context, token string) (*Principal, error)
}

// Principal is what a verified token says about its bearer. A Principal
// returned by a Verifier may be shared between requests (it is cached) and
// must be treated as read-only.
type Principal struct {
	// Source is the configured name of the issuer that verified the token.
	Source string
	// Issuer is the token's "iss".
	Issuer string
	// Subject is "sub"; ClientID is "client_id", "azp", "cid" or
	// "appid" (Microsoft Entra ID v1), the first present.
	Subject, ClientID string
	// Audience is "aud"; Scopes come from "scope" or "scp".
	Audience, Scopes []string
	// Expiry is "exp"; the zero time if the token had none.
	Expiry time.Time
	// Claims holds every claim, for claim policies and headers. JWT
	// verifiers fill it only when asked to (JWTOptions.KeepClaims).
	Claims map[string]any

	// keyGone is set once the key that verified the token left the
	// issuer's JWKS; the cache then drops the verification.
	keyGone *atomic.Bool
	// tokenID is the token's log fingerprint, set by the cache from the
	// hash it computed anyway.
	tokenID string
}

// TokenID is the first 8 hex characters of the token's SHA-256, for logs
// (set by Cache; "" for a principal that did not come through one).
func (p *Principal) TokenID() string { return p.tokenID }

// KeyWithdrawn reports whether the key that verified this principal's
// token has since been removed from its issuer's JWKS.
func (p *Principal) KeyWithdrawn() bool { return p.keyGone != nil && p.keyGone.Load() }

// HasScope reports whether s was granted.
func (p *Principal) HasScope(s string) bool { return slices.Contains(p.Scopes, s) }

var (
	// ErrInvalidToken: the token is not acceptable (→ 401 invalid_token).
	ErrInvalidToken = errors.New("invalid token")
	// ErrUnavailable: the token could not be checked because an identity
	// provider could not be reached (→ 503, retry later). Never cached.
	ErrUnavailable = errors.New("verifier unavailable")
)

// InvalidError is a rejection with a short, fixed reason that is safe to
// show the sender (it never contains the token). It matches ErrInvalidToken.
type InvalidError struct {
	// Reason is a short description such as "token expired".
	Reason string
	// Cause is the underlying error, for logs.
	Cause error
	// remote is true when an identity provider rejected the token (an
	// inactive introspection answer): only such rejections are cached.
	remote bool
}

// Error returns "invalid token: reason: cause".
func (e *InvalidError) Error() string {
	s := "invalid token: " + e.Reason
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

// Is makes errors.Is(err, ErrInvalidToken) true.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalidToken }

// Unwrap returns the cause.
func (e *InvalidError) Unwrap() error { return e.Cause }

func invalid(reason string, cause error) error {
	return &InvalidError{Reason: reason, Cause: cause}
}

// UnavailableError says which identity provider could not be reached.
type UnavailableError struct {
	// Issuer is the configured issuer name.
	Issuer string
	// Cause is the network, timeout or status error.
	Cause error
}

// Error returns "verifier unavailable: issuer: cause".
func (e *UnavailableError) Error() string {
	return "verifier unavailable: " + e.Issuer + ": " + e.Cause.Error()
}

// Is makes errors.Is(err, ErrUnavailable) true.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// Unwrap returns the cause.
func (e *UnavailableError) Unwrap() error { return e.Cause }

func unavailable(issuer string, cause error) error {
	return &UnavailableError{Issuer: issuer, Cause: bound(cause)}
}

// Reason returns the sender-safe reason of a rejection, or "".
func Reason(err error) string {
	var ie *InvalidError
	if errors.As(err, &ie) {
		return ie.Reason
	}
	return ""
}

// Func adapts a function to the Verifier interface.
type Func func(ctx context.Context, token string) (*Principal, error)

// Verify calls f.
func (f Func) Verify(ctx context.Context, token string) (*Principal, error) { return f(ctx, token) }
