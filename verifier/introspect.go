package verifier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"

	"github.com/tokengate/tokengate/internal/spans"
)

// MaxIntrospectionResponse bounds an introspection answer.
const MaxIntrospectionResponse = 1 << 20

// IntrospectionOptions configures an RFC 7662 issuer.
type IntrospectionOptions struct {
	// Name is the configured issuer name, reported as Principal.Source.
	Name string
	// URL of the introspection endpoint.
	URL string
	// ClientID and ClientSecret authenticate tokengate to the endpoint.
	ClientID, ClientSecret string
	// PostAuth sends the credentials in the form body
	// (client_secret_post) instead of HTTP Basic (client_secret_basic).
	PostAuth bool
	// NoAuth sends no client credentials at all, for endpoints such as
	// ORY Hydra's admin introspection that take none (reachable only on a
	// private network). ClientID and ClientSecret are then unused.
	NoAuth bool
	// Issuer, when set, must equal the answer's "iss" (an answer without
	// one is refused).
	Issuer string
	// Audiences must intersect the answer's "aud", unless
	// SkipAudienceCheck is set.
	Audiences []string
	// SkipAudienceCheck accepts any "aud". It MUST NOT be set when the
	// issuer also issues tokens for other services.
	SkipAudienceCheck bool
	// MaxConcurrent caps calls in flight (default 16); RatePerSecond and
	// Burst are a token bucket on calls (default 50/s, burst 100). A call
	// past either bound is not made: the caller gets ErrUnavailable (503,
	// retry later), so a flood of random tokens cannot flood the endpoint.
	MaxConcurrent int
	RatePerSecond float64
	Burst         int
	// Client makes the calls; its Timeout bounds one call. It is copied:
	// redirects are never followed, whatever its CheckRedirect says.
	Client *http.Client
	// Now is the clock; default time.Now.
	Now func() time.Time
	// OnCall, if set, is called after every call with its error.
	OnCall func(err error)
	// OnVerify, if set, is called after every verification with the time
	// it took and its error (metrics).
	OnVerify func(elapsed time.Duration, err error)
	// ClaimNames limits Principal.Claims to these members of the answer:
	// the ones route policies and claim headers read (a cached token holds
	// its claims as long as it is cached; empty: none). nil keeps every
	// member but "active".
	ClaimNames []string
}

// Introspection verifies opaque tokens by asking an RFC 7662 endpoint. A
// token shaped like a JWS is asked about only if it names a public-key
// algorithm: "none" and HS* JWTs are refused without a call.
type Introspection struct {
	o      IntrospectionOptions
	auth   string // precomputed Basic header
	intern *interner
	keep   *claimFilter
	rules  claimRules
	slots  *semaphore.Weighted // MaxConcurrent calls in flight
	rate   *rate.Limiter
	last   atomic.Pointer[IntrospectionStatus] // Status
}

// errIntrospectionBusy: the call was not made because of the bounds.
var errIntrospectionBusy = errors.New("introspection calls at their limit")

var _ Verifier = (*Introspection)(nil)

// NewIntrospection returns an introspection verifier.
func NewIntrospection(o IntrospectionOptions) (*Introspection, error) {
	if o.URL == "" || o.ClientID == "" && !o.NoAuth {
		return nil, errors.New("verifier: introspection needs a URL and a client id (or NoAuth)")
	}
	if len(o.Audiences) == 0 && !o.SkipAudienceCheck {
		return nil, fmt.Errorf("verifier: introspection issuer %s: no audiences configured (set SkipAudienceCheck to accept any)", o.Name)
	}
	if o.MaxConcurrent <= 0 {
		o.MaxConcurrent = 16
	}
	if o.RatePerSecond <= 0 {
		o.RatePerSecond = 50
	}
	if o.Burst <= 0 {
		o.Burst = 100
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 5 * time.Second}
	}
	// A redirect is never followed: a 307/308 would re-post the sender's
	// token and tokengate's client secret to wherever it points. The 3xx
	// answer itself is then an unusable answer (503).
	c := *o.Client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	o.Client = &c
	if o.Now == nil {
		o.Now = time.Now
	}
	in := &Introspection{o: o, intern: newInterner(), keep: newClaimFilter(true, o.ClaimNames), rules: claimRules{audiences: o.Audiences, anyAudience: o.SkipAudienceCheck}, slots: semaphore.NewWeighted(int64(o.MaxConcurrent)), rate: rate.NewLimiter(rate.Limit(o.RatePerSecond), o.Burst)}
	if !o.PostAuth && !o.NoAuth {
		// RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic.
		req, _ := http.NewRequest(http.MethodPost, "http://x", nil)
		req.SetBasicAuth(url.QueryEscape(o.ClientID), url.QueryEscape(o.ClientSecret))
		in.auth = req.Header.Get("Authorization")
	}
	return in, nil
}

// Name is the configured issuer name.
func (in *Introspection) Name() string { return in.o.Name }

// Verify asks the endpoint about token and tells OnVerify.
func (in *Introspection) Verify(ctx context.Context, token string) (*Principal, error) {
	if in.o.OnVerify == nil {
		return in.verify(ctx, token)
	}
	start := time.Now()
	p, err := in.verify(ctx, token)
	in.o.OnVerify(time.Since(start), err)
	return p, err
}

// verify checks the token's size and shape, then asks the endpoint within
// the bounds.
func (in *Introspection) verify(ctx context.Context, token string) (*Principal, error) {
	if len(token) > MaxTokenSize {
		return nil, invalid("token too large", nil)
	}
	if err := introspectable(token); err != nil {
		return nil, err
	}
	if !in.slots.TryAcquire(1) { // never waits: a busy endpoint is 503 at once
		return nil, unavailable(in.o.Name, fmt.Errorf("%w: %d in flight", errIntrospectionBusy, in.o.MaxConcurrent))
	}
	defer in.slots.Release(1)
	if !in.rate.Allow() {
		return nil, unavailable(in.o.Name, fmt.Errorf("%w: %g per second", errIntrospectionBusy, in.o.RatePerSecond))
	}
	ctx, span := spans.Start(ctx, "introspection")
	p, err := in.call(ctx, token)
	in.record(err)
	if in.o.OnCall != nil {
		in.o.OnCall(err)
	}
	if span.IsRecording() {
		r := resultActive
		if err != nil {
			r = verdict(err)
		}
		endCall(span, in.o.Name, r)
	}
	return p, err
}

// introspectable refuses, before any call, a token shaped like a JWS
// (in any spelling of its header) that is malformed or whose alg is not a
// public-key algorithm: an endpoint that validates JWTs itself must never
// be shown an unsigned ("none") or HMAC token through tokengate. Opaque
// tokens and public-key JWTs of the issuer are asked about.
func introspectable(token string) error {
	jws, err := parseCompactJWS(token)
	switch {
	case errors.Is(err, errNotJWS):
		return nil
	case err != nil:
		return err
	case !slices.Contains(asymmetricAlgs, jws.alg):
		return invalid(reasonAlg, fmt.Errorf("a JWS with alg %q is never introspected", jws.alg))
	}
	return nil
}

// call asks the endpoint about token: an answer it cannot use, or none,
// is ErrUnavailable.
func (in *Introspection) call(ctx context.Context, token string) (*Principal, error) {
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	if in.o.PostAuth && !in.o.NoAuth {
		form.Set("client_id", in.o.ClientID)
		form.Set("client_secret", in.o.ClientSecret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.o.URL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, unavailable(in.o.Name, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if in.auth != "" {
		req.Header.Set("Authorization", in.auth)
	}
	resp, err := in.o.Client.Do(req)
	if err != nil {
		return nil, unavailable(in.o.Name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxIntrospectionResponse+1))
	if err != nil {
		return nil, unavailable(in.o.Name, fmt.Errorf("reading introspection answer: %w", err))
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return nil, unavailable(in.o.Name, fmt.Errorf("introspection answered %s; redirects are not followed", resp.Status))
	}
	if resp.StatusCode != http.StatusOK {
		// 5xx is an outage; 4xx means tokengate's own credentials or request
		// were refused, which says nothing about the token: retry later.
		return nil, unavailable(in.o.Name, fmt.Errorf("introspection answered %s", resp.Status))
	}
	if len(body) > MaxIntrospectionResponse {
		return nil, unavailable(in.o.Name, errors.New("introspection answer too large"))
	}
	return in.principal(body)
}

// principal reads an introspection answer: an active access token of this
// issuer, valid now, for one of the audiences.
func (in *Introspection) principal(body []byte) (*Principal, error) {
	c, err := parseClaims(body)
	if err == nil {
		c.all, err = in.keep.pick(body)
	}
	if err != nil {
		if errors.Is(err, errNotObject) {
			return nil, unavailable(in.o.Name, errors.New("introspection answer is not an RFC 7662 JSON object"))
		}
		return nil, invalid("introspection answer has malformed claims", err)
	}
	if c.active == nil {
		return nil, unavailable(in.o.Name, errors.New(`introspection answer has no "active" member`))
	}
	if !*c.active {
		return nil, &InvalidError{Reason: "token is not active", remote: true}
	}
	if notAccessToken(c.tokenType) || notAccessToken(c.tokenUse) {
		return nil, invalid("not an access token", fmt.Errorf("token_type %q, token_use %q", c.tokenType, c.tokenUse))
	}
	if err := in.rules.checkTimes(c, in.o.Now()); err != nil {
		return nil, err
	}
	if in.o.Issuer != "" && c.issuer != in.o.Issuer {
		return nil, invalid("issuer not accepted", nil)
	}
	if err := in.rules.checkAudience(c); err != nil {
		return nil, err
	}
	delete(c.all, "active")
	return in.intern.principal(c, in.o.Name, in.keep.shared()), nil
}

// notAccessToken reports whether an introspection answer's token_type
// (RFC 7662) or token_use (Cognito) says the token is a refresh or ID
// token: those must never open a route meant for access tokens.
func notAccessToken(kind string) bool {
	k := strings.ToLower(kind)
	return strings.Contains(k, "refresh") || strings.Contains(k, "id_token") || strings.Contains(k, "id-token") || k == "id"
}
