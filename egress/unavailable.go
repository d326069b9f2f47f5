package egress

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// UnavailableError is returned when no valid token could be had within
// the wait bound. Its text names the egress and the cause, never a secret.
type UnavailableError struct {
	Egress string
	// Cause is the last token request's failure (often a *TokenError), or
	// why waiting ended.
	Cause error
	// RetryAfter is when a new token request may be made.
	RetryAfter time.Duration
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("egress %s: no valid access token: %v", e.Egress, e.Cause)
}

// Unwrap returns the cause.
func (e *UnavailableError) Unwrap() error { return e.Cause }

// unavailable builds the error callers get, preferring the token
// endpoint's own failure as the cause.
func (s *Source) unavailable(why error) *UnavailableError {
	s.mu.Lock()
	defer s.mu.Unlock()
	cause := why
	if s.lastErr != nil {
		cause = s.lastErr
	}
	return &UnavailableError{Egress: s.o.Name, Cause: cause, RetryAfter: max(time.Until(s.notBefore), time.Second)}
}

// backoff is the wait after n consecutive failures: min·2^(n-1), capped,
// with jitter in its upper half so replicas do not retry in step.
func backoff(lo, hi time.Duration, n int) time.Duration {
	d := hi
	if n < 32 {
		d = min(lo<<(n-1), hi)
	}
	return d/2 + rand.N(d/2+1)
}
