package egress

import "time"

// attemptRecord is when the last token request ended and its result.
type attemptRecord struct {
	at     time.Time
	result string
}

// TokenStatus is what a Source can tell about its token without showing
// it: for the status page. It never holds the token, the refresh token or
// the client secret.
type TokenStatus struct {
	// Held is true while a token is valid for a request leaving now.
	Held bool
	// Obtained and Expiry are the current token's; RefreshAt is when the
	// background refresh renews it. Zero without a token.
	Obtained, Expiry, RefreshAt time.Time
	// Scope is the granted scope, when the endpoint named one.
	Scope string
	// LastAttempt is when the last token request ended (zero: none yet)
	// and LastResult its result: "success" or the failure's label
	// (TokenError.Label: invalid_client, timeout, …).
	LastAttempt time.Time
	LastResult  string
	// LastError is the last failure's text, redacted like every
	// TokenError (no secret, no token); "" after a success.
	LastError string
	// Failures counts token requests failed in a row; RetryAt is when the
	// next may be made (zero: at once).
	Failures int
	RetryAt  time.Time
	// Waits counts callers that found no valid token and had to wait for
	// one since the Source started.
	Waits uint64
}

// Status reports the token's state. It reads memory only.
func (s *Source) Status() TokenStatus {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := TokenStatus{LastAttempt: s.last.at, LastResult: s.last.result, Failures: s.failures, Waits: s.waits.Load()}
	if now.Before(s.notBefore) {
		st.RetryAt = s.notBefore
	}
	if t := s.tok; t != nil {
		st.Held = now.Before(usableUntil(t))
		st.Obtained, st.Expiry, st.RefreshAt, st.Scope = t.Obtained.Round(0), t.Expiry.Round(0), s.refreshAt(t).Round(0), t.Scope
	}
	if s.lastErr != nil {
		st.LastError = s.lastErr.Error()
	}
	return st
}
