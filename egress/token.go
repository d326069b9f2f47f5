package egress

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// AuthStyle is how a token request carries the client credentials.
type AuthStyle string

// The request shapes the seed vendors document.
const (
	// AuthBasic: HTTP Basic credentials, form body (Deployteq, Akamai).
	AuthBasic AuthStyle = "basic"
	// AuthForm: client_id and client_secret in the form body (AfterShip).
	AuthForm AuthStyle = "form"
	// AuthJSON: everything in a JSON body (MyParcel.com).
	AuthJSON AuthStyle = "json"
	// AuthMultipart: multipart/form-data body with Basic credentials
	// (Akamai's curl -F).
	AuthMultipart AuthStyle = "multipart"
)

// Token request defaults.
const (
	DefaultTokenTimeout    = 10 * time.Second
	DefaultLifetime        = 5 * time.Minute
	minLifetime            = time.Second
	maxRetryAfter          = 10 * time.Minute
	maxDescriptionLen      = 200
	maxTokenTypeLen        = 40
	errorUnreachable       = "unreachable"
	errorTimeout           = "timeout"
	errorRateLimited       = "rate_limited"
	errorServer            = "server_error"
	errorBadResponse       = "bad_response"
	errorUnsupportedType   = "unsupported_token_type"
	errorTooShort          = "lifetime_too_short"
	errorOther             = "other_error"
	resultSuccess          = "success"
	redirectRefusedMessage = "the token endpoint redirected; tokengate sends credentials only to the configured URL"
)

// TokenOptions describe one client's token requests.
type TokenOptions struct {
	// URL is the vendor's Token URL.
	URL string
	// ClientID and ClientSecret are the client credentials.
	ClientID, ClientSecret string
	// Auth is the request shape; default AuthBasic.
	Auth AuthStyle
	// Scopes are sent space-separated in "scope" ("*" as is).
	Scopes []string
	// Params are extra form parameters such as audience or resource.
	Params map[string]string
	// DefaultLifetime is assumed when the answer has no expires_in and the
	// token is not a JWT with an exp. Default 5m.
	DefaultLifetime time.Duration
	// Client sends the token requests; its Transport is used, redirects
	// are refused. Default: a client with a 10s timeout.
	Client *http.Client
}

// Token is an access token and its timing.
type Token struct {
	// Value is the access token. It is a secret: never log it.
	Value string
	// Obtained is when the token request was sent, and Expiry is counted
	// from then (a vendor counts expires_in from the moment it issued
	// the token, which is after the request left but before its answer
	// arrived: counting from the answer would use a slow vendor's token
	// past its expiry). Both carry a monotonic clock reading.
	Obtained, Expiry time.Time
	// Scope is the granted scope, when the answer named one.
	Scope string

	shared     string // its sealed value in the shared store, "" if not stored there
	fromShared bool   // read from the shared store, not requested here
	refreshGen uint64 // the shared refresh token's generation it came with, 0 if none
}

// Lifetime is the token's whole validity from when it was obtained.
func (t *Token) Lifetime() time.Duration { return t.Expiry.Sub(t.Obtained) }

// TokenError is a failed token request. Its text never holds the client
// secret or a token.
type TokenError struct {
	// Code is the RFC 6749 §5.2 error code the endpoint sent
	// (invalid_client, invalid_scope, …) or one of tokengate's:
	// unreachable, timeout, rate_limited, server_error, bad_response,
	// unsupported_token_type, lifetime_too_short.
	Code string
	// Description is the endpoint's error_description (and error_uri, or
	// an excerpt of an answer that is not an RFC 6749 error), or
	// tokengate's explanation, cleaned of control characters; the client
	// secret and the tokens are hidden (redactor).
	Description string
	// Status is the HTTP status the endpoint answered, 0 if none.
	Status int
	// RetryAfter is the endpoint's Retry-After, 0 if none.
	RetryAfter time.Duration
	// Err is the underlying transport error, if any.
	Err error
}

func (e *TokenError) Error() string {
	var b strings.Builder
	b.WriteString("token endpoint: ")
	b.WriteString(e.Code)
	if e.Status != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", e.Status)
	}
	if e.Description != "" {
		b.WriteString(": ")
		b.WriteString(e.Description)
	}
	return b.String()
}

// Unwrap returns the transport error.
func (e *TokenError) Unwrap() error { return e.Err }

// Permanent reports whether repeating the same request cannot help until
// the configuration or the vendor's settings change: a 4xx answer other
// than 408 and 429, or a token tokengate cannot use.
func (e *TokenError) Permanent() bool {
	switch e.Code {
	case errorUnsupportedType:
		return true
	case errorRateLimited, errorTimeout, errorUnreachable, errorServer, errorTooShort, errorBadResponse:
		return false
	}
	return e.Status >= 400 && e.Status < 500 && e.Status != http.StatusRequestTimeout && e.Status != http.StatusTooManyRequests
}

// rfc6749Codes are the error codes of RFC 6749 §5.2; others are exported
// as "other_error" so a metrics label never takes a value from outside.
var rfc6749Codes = map[string]bool{
	"invalid_request": true, "invalid_client": true, "invalid_grant": true,
	"unauthorized_client": true, "unsupported_grant_type": true, "invalid_scope": true,
}

// Label is Code restricted to a fixed set, for metrics.
func (e *TokenError) Label() string {
	switch {
	case rfc6749Codes[e.Code]:
		return e.Code
	case e.Code == errorUnreachable, e.Code == errorTimeout, e.Code == errorRateLimited, e.Code == errorServer,
		e.Code == errorBadResponse, e.Code == errorUnsupportedType, e.Code == errorTooShort,
		e.Code == errorAuthorizationRequired, e.Code == errorNotStored:
		return e.Code
	}
	return errorOther
}

// Fetch performs one client credentials token request, without retries.
func Fetch(ctx context.Context, o TokenOptions) (*Token, error) {
	cc := clientcredentials.Config{
		ClientID: o.ClientID, ClientSecret: o.ClientSecret, TokenURL: o.URL, Scopes: o.Scopes,
		AuthStyle: oauth2.AuthStyleInHeader,
	}
	if o.Auth == AuthForm || o.Auth == AuthJSON {
		cc.AuthStyle = oauth2.AuthStyleInParams
	}
	if len(o.Params) > 0 {
		cc.EndpointParams = url.Values{}
		for k, v := range o.Params {
			cc.EndpointParams.Set(k, v)
		}
	}
	client := o.httpClient(func(next http.RoundTripper) http.RoundTripper {
		return shapeTransport{style: o.Auth, next: next}
	})
	ctx = context.WithValue(ctx, oauth2.HTTPClient, client)
	r := o.redactor(heldFrom(ctx)...)
	sent := time.Now()
	tok, err := cc.Token(ctx)
	if err != nil {
		return nil, r.seal(classify(err, r))
	}
	t, err := accept(tok, sent, o, r)
	return t, r.seal(err)
}

// timeout bounds one token request: the client's timeout, or
// DefaultTokenTimeout.
func (o TokenOptions) timeout() time.Duration {
	if o.Client != nil && o.Client.Timeout > 0 {
		return o.Client.Timeout
	}
	return DefaultTokenTimeout
}

// httpClient is the client for token requests: the configured one's
// transport (wrapped by wrap, if set) and timeout, with redirects refused
// so that credentials go to the configured URL only.
func (o TokenOptions) httpClient(wrap func(http.RoundTripper) http.RoundTripper) *http.Client {
	base := o.Client
	if base == nil {
		base = &http.Client{Timeout: DefaultTokenTimeout}
	}
	next := base.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	if wrap != nil {
		next = wrap(next)
	}
	return &http.Client{Transport: next, Timeout: base.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// accept checks a token answer to the request sent at sent and works
// out its expiry, counted from sent; the answer's text passes through r,
// which also hides the tokens it carried.
func accept(tok *oauth2.Token, sent time.Time, o TokenOptions, r redactor) (*Token, error) {
	r = r.withTokens(tok.AccessToken, tok.RefreshToken)
	if tt := tok.TokenType; tt != "" && !strings.EqualFold(tt, "bearer") {
		tt = r.text(tt, maxTokenTypeLen)
		return nil, &TokenError{Code: errorUnsupportedType, Description: fmt.Sprintf(
			"token_type %q is not Bearer: tokengate sends bearer tokens only (RFC 6750), and a %s token needs a proof of possession it does not make", tt, tt)}
	}
	if !headerSafe(tok.AccessToken) {
		return nil, &TokenError{Code: errorBadResponse, Description: "the access_token holds characters an Authorization header cannot carry (spaces, control characters or non-ASCII)"}
	}
	now := time.Now()
	var expiry time.Time
	if !tok.Expiry.IsZero() {
		// x/oauth2 counts expires_in from when it read the answer: moved
		// back by the time the request took, it counts from sent.
		expiry = sent.Add(tok.Expiry.Sub(now))
	}
	if exp, ok := jwtExpiry(tok.AccessToken); ok {
		if e := now.Add(exp.Sub(now)); expiry.IsZero() || e.Before(expiry) {
			expiry = e // the token's own exp is exact (MyParcel's advice)
		}
	}
	if expiry.IsZero() {
		d := o.DefaultLifetime
		if d <= 0 {
			d = DefaultLifetime
		}
		expiry = sent.Add(d)
	}
	if left := expiry.Sub(now); left < minLifetime {
		return nil, &TokenError{Code: errorTooShort, Description: fmt.Sprintf("the token is valid for %v only (at least %v needed)", left.Round(time.Millisecond), minLifetime)}
	}
	t := &Token{Value: tok.AccessToken, Obtained: sent, Expiry: expiry}
	if s, ok := tok.Extra("scope").(string); ok {
		t.Scope = r.text(s, maxScopeLen)
	}
	return t, nil
}

// headerSafe reports whether a token can follow "Bearer " in a header:
// visible ASCII only. That is wider than RFC 6750's b64token, since
// vendors issue tokens such as Laravel Sanctum's "id|secret".
func headerSafe(tok string) bool {
	for i := 0; i < len(tok); i++ {
		if tok[i] < 0x21 || tok[i] > 0x7e {
			return false
		}
	}
	return true
}

// jwtExpiry reads "exp" from a JWT's payload without verifying it: the
// token is the vendor's to check; tokengate only needs its lifetime.
func jwtExpiry(tok string) (time.Time, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || len(parts[1]) > 16<<10 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp *json.Number `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Exp == nil {
		return time.Time{}, false
	}
	f, err := claims.Exp.Float64()
	if err != nil || f <= 0 || f > 1<<40 {
		return time.Time{}, false
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)), true
}

// classify turns an oauth2 or transport error into a TokenError; every
// text the endpoint sent passes through r.
func classify(err error, r redactor) *TokenError {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		te := &TokenError{Code: r.text(re.ErrorCode, maxCodeLen), Description: r.text(re.ErrorDescription, maxDescriptionLen)}
		if re.ErrorURI != "" {
			te.Description = strings.TrimSpace(te.Description + " (see " + r.text(re.ErrorURI, maxDescriptionLen) + ")")
		}
		if resp := re.Response; resp != nil {
			te.Status = resp.StatusCode
			te.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
			body := excerpt(re.Body, resp.Header.Get("Content-Type"))
			switch {
			case resp.StatusCode == http.StatusTooManyRequests:
				te.Code = errorRateLimited
			case resp.StatusCode >= 300 && resp.StatusCode < 400:
				te.Code, te.Description = errorBadResponse, redirectRefusedMessage
			case te.Code == "" && resp.StatusCode >= 500:
				te.Code = errorServer
				if body != "" {
					te.Description = "the answer: " + r.text(body, maxDescriptionLen)
				}
			case te.Code == "":
				te.Code = errorBadResponse
				te.Description = "the answer is not an RFC 6749 error response"
				if body != "" {
					te.Description += ": " + r.text(body, maxDescriptionLen)
				}
			}
		}
		return te
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return &TokenError{Code: errorTimeout, Description: "no answer in time", Err: err}
	case errors.As(err, new(*url.Error)):
		return &TokenError{Code: errorUnreachable, Description: r.text(errors.Unwrap(err).Error(), maxDescriptionLen), Err: err}
	}
	// oauth2's own messages: unparsable JSON, missing access_token.
	return &TokenError{Code: errorBadResponse, Description: r.text(strings.TrimPrefix(err.Error(), "oauth2: "), maxDescriptionLen)}
}

// retryAfter parses a Retry-After header (seconds or an HTTP date),
// capped at maxRetryAfter.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		d = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

// clean makes text safe to log and show: no control characters, at most
// n bytes. Text from a token endpoint goes through a redactor's text,
// which calls clean after hiding the secrets.
func clean(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "") + "…"
	}
	return s
}
