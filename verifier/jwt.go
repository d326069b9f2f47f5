package verifier

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// MaxTokenSize is the longest token a verifier looks at; longer ones are
// rejected before any parsing.
const MaxTokenSize = 16 << 10

// JWTOptions configures a JWT issuer.
type JWTOptions struct {
	// Name is the configured issuer name, reported as Principal.Source.
	Name string
	// Issuer is the exact "iss" tokens must carry; discovery runs against
	// it when JWKSURL and KeySet are empty.
	Issuer string
	// JWKSURL, when set, skips discovery.
	JWKSURL string
	// KeySet, when set, is used instead of any remote key set (the
	// embedded token endpoint verifies its own tokens in-process).
	KeySet *StaticKeySet
	// Audiences accepted; a token must name at least one of them in "aud".
	Audiences []string
	// SkipAudienceCheck accepts any "aud". It MUST NOT be set when the
	// issuer also issues tokens for other services.
	SkipAudienceCheck bool
	// Algorithms allowed; "none" and HS* are refused by NewJWT.
	Algorithms []string
	// ClockSkew tolerated on exp, nbf and iat.
	ClockSkew time.Duration
	// RequiredType, when set, must match the header "typ" (e.g. "at+jwt").
	RequiredType string
	// Client fetches discovery and JWKS documents; it must have a timeout.
	Client *http.Client
	// RefreshCooldown is the refill period of the unknown-kid refetch
	// bucket (burst 3); zero means DefaultRefreshCooldown.
	RefreshCooldown time.Duration
	// RefreshInterval is how often keys are revalidated (by Run, or by the
	// next token once they are older). Default 1m.
	RefreshInterval time.Duration
	// KeepClaims fills Principal.Claims with every claim (needed for claim
	// policies and claim headers), or with the ClaimNames only. Without it
	// only the registered and scope claims are decoded, which is cheaper.
	KeepClaims bool
	// ClaimNames, with KeepClaims, limits Principal.Claims to these claims:
	// the ones route policies and claim headers read (a cached token holds
	// its claims as long as it is cached). nil keeps every claim.
	ClaimNames []string
	// Now is the clock; default time.Now.
	Now func() time.Time
	// OnJWKSFetch, if set, is called after every JWKS fetch.
	OnJWKSFetch func(err error)
	// OnJWKSWarning, if set, is told about JWKS keys that are ignored.
	OnJWKSWarning func(msg string)
	// OnVerify, if set, is called after every verification of a token of
	// this issuer with the time it took and its error (metrics).
	OnVerify func(elapsed time.Duration, err error)
}

// JWT verifies JWT access tokens of one issuer: signatures with go-jose and
// the keys of the issuer's JWKS (found by go-oidc's discovery or given),
// then the registered claims.
type JWT struct {
	o      JWTOptions
	algs   []jose.SignatureAlgorithm
	intern *interner
	keep   *claimFilter
	rules  claimRules
	// keys is the issuer's key set: in memory (KeySet), or remote at
	// JWKSURL or at the jwks_uri that discovery finds on first use.
	keys keySource
}

var _ Verifier = (*JWT)(nil)

// NewJWT checks the options and returns a verifier. It makes no network
// call: discovery and the first JWKS fetch happen in Start or on first use.
func NewJWT(o JWTOptions) (*JWT, error) {
	if o.Issuer == "" {
		return nil, errors.New("verifier: JWT issuer needs an issuer URL")
	}
	if len(o.Audiences) == 0 && !o.SkipAudienceCheck {
		return nil, fmt.Errorf("verifier: issuer %s: no audiences configured (set SkipAudienceCheck to accept any)", o.Name)
	}
	if len(o.Algorithms) == 0 {
		return nil, fmt.Errorf("verifier: issuer %s: no algorithms allowed", o.Name)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 5 * time.Second}
	}
	j := &JWT{o: o, intern: newInterner(), keep: newClaimFilter(o.KeepClaims, o.ClaimNames), rules: claimRules{
		audiences: o.Audiences, anyAudience: o.SkipAudienceCheck, skew: o.ClockSkew, needExpiry: true, issuedAt: true,
	}}
	for _, a := range o.Algorithms {
		alg := jose.SignatureAlgorithm(a)
		if !slices.Contains(asymmetricAlgs, alg) {
			return nil, fmt.Errorf("verifier: issuer %s: algorithm %q is not allowed with public keys", o.Name, a)
		}
		j.algs = append(j.algs, alg)
	}
	ko := KeySetOptions{
		Client: o.Client, Cooldown: o.RefreshCooldown, MaxAge: o.RefreshInterval, Now: o.Now,
		OnFetch: o.OnJWKSFetch, OnWarn: o.OnJWKSWarning, Name: o.Name,
	}
	switch {
	case o.KeySet != nil:
		j.keys = o.KeySet
	case o.JWKSURL != "":
		j.keys = NewRemoteKeySet(o.JWKSURL, ko)
	default:
		j.keys = newRemoteKeySet(discoveredLocation(o.Name, o.Issuer, o.Client, o.Now), ko)
	}
	return j, nil
}

// Name is the configured issuer name.
func (j *JWT) Name() string { return j.o.Name }

// Issuer is the "iss" this verifier accepts.
func (j *JWT) Issuer() string { return j.o.Issuer }

// Start runs discovery (if needed) and fetches the keys once, so that
// readiness can be reported and configuration errors surface early.
func (j *JWT) Start(ctx context.Context) error {
	err := j.keys.Refresh(ctx)
	var de *discoveryError
	if err != nil && !errors.As(err, &de) {
		return fmt.Errorf("issuer %s: fetching JWKS: %w", j.o.Name, err)
	}
	return err
}

// Refresh refetches the issuer's JWKS now (SIGHUP); keys held in memory
// have nothing to refetch.
func (j *JWT) Refresh(ctx context.Context) error { return j.keys.Refresh(ctx) }

// Run revalidates the issuer's keys every RefreshInterval until ctx ends
// (after Start succeeded), so a withdrawn key stops verifying tokens, cached
// ones included, within that interval.
func (j *JWT) Run(ctx context.Context) { j.keys.Run(ctx) }

// Ready reports whether the issuer's keys are available. It reads memory
// only: it never waits for discovery or a JWKS fetch in flight.
func (j *JWT) Ready() bool { return j.keys.Ready() }

// Verify checks signature, issuer, audience, type and times of token.
func (j *JWT) Verify(ctx context.Context, token string) (*Principal, error) {
	if len(token) > MaxTokenSize {
		return nil, invalid("token too large", nil)
	}
	t, err := parseJWT(token)
	if errors.Is(err, errNotJWS) {
		return nil, invalid(reasonAlg, err)
	}
	if err != nil {
		return nil, err
	}
	return j.verifyParsed(ctx, t)
}

// verifyParsed checks a token decoded once by parseJWT (by Verify, or by
// the Set that routed it here) and tells OnVerify.
func (j *JWT) verifyParsed(ctx context.Context, t *parsedJWT) (*Principal, error) {
	if j.o.OnVerify == nil {
		return j.check(ctx, t)
	}
	start := time.Now()
	p, err := j.check(ctx, t)
	j.o.OnVerify(time.Since(start), err)
	return p, err
}

// check verifies a decoded token: the algorithm must be allowed, the
// header type and the issuer must be this issuer's, a key of the issuer
// with the token's kid (and, when the JWK names one, the token's alg) must
// verify the signature, and the claims must hold.
func (j *JWT) check(ctx context.Context, t *parsedJWT) (*Principal, error) {
	if !slices.Contains(j.algs, t.alg) {
		return nil, invalid(reasonAlg, nil)
	}
	if j.o.RequiredType != "" && !typeMatches(t.typ, j.o.RequiredType) {
		return nil, invalid("token type not accepted", fmt.Errorf("typ %q", t.typ))
	}
	if t.claims.issuer != j.o.Issuer {
		return nil, invalid("issuer not accepted", nil)
	}
	keys, err := j.keys.keysFor(ctx, t.kid)
	if err != nil {
		if errors.Is(err, errUnknownKey) {
			return nil, invalid("unknown signing key", err)
		}
		return nil, unavailable(j.o.Name, err)
	}
	var used *key
	for i := range keys {
		k := &keys[i]
		if k.jwk.Algorithm != "" && k.jwk.Algorithm != string(t.alg) {
			continue // RFC 7517 §4.4: a key is used only with its own alg
		}
		if verifySignature(t.alg, k.jwk.Key, t.signingInput, t.sig) == nil {
			used = k
			break
		}
	}
	if used == nil {
		return nil, invalid("signature verification failed", nil)
	}
	if err := j.checkClaims(t.claims); err != nil {
		return nil, err
	}
	if t.claims.all, err = j.keep.pick(t.payload); err != nil {
		return nil, invalid("malformed claims", err)
	}
	p := j.intern.principal(t.claims, j.o.Name, j.keep.shared())
	p.keyGone = used.gone
	return p, nil
}

// reasonAlg is the rejection of a token whose algorithm is not allowed (or
// that is not a compact JWS at all).
const reasonAlg = "malformed token or algorithm not allowed"

// asymmetricAlgs are every algorithm a JWT may carry; issuers narrow the
// list. "none" and HS* are not in it.
var asymmetricAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// parsedJWT is a compact JWS decoded once (parseCompactJWS) with the
// strictly decoded registered claims of its payload; the Set and the JWT
// verifier share it.
type parsedJWT struct {
	*compactJWS
	raw    string
	claims *claims
}

// errNotJWS: the token is not shaped like a compact JWS at all, so it may
// be an opaque token for introspection.
var errNotJWS = errors.New("not a compact JWS")

// parseJWT decodes token without verifying it: its structure and claims
// only, enough to route it by "iss". Failures are rejections
// (InvalidError), except errNotJWS for tokens that are not JWS-shaped. The
// algorithm is checked by whoever the token is routed to: a JWT issuer
// against its allow-list (never "none" or HS*: a public key can never serve
// as an HMAC secret), the introspection issuer against the public-key
// algorithms (introspectable).
func parseJWT(token string) (*parsedJWT, error) {
	jws, err := parseCompactJWS(token)
	if err != nil {
		return nil, err
	}
	t := &parsedJWT{compactJWS: jws, raw: token}
	if t.claims, err = parseClaims(jws.payload); err != nil {
		return nil, invalid("malformed claims", err)
	}
	return t, nil
}

// claimMap decodes every claim, numbers kept exact, for claim policies
// and claim headers.
func claimMap(payload []byte) (map[string]any, error) {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	err := dec.Decode(&m)
	return m, err
}

func (j *JWT) checkClaims(c *claims) error {
	if err := j.rules.checkTimes(c, j.o.Now()); err != nil {
		return err
	}
	return j.rules.checkAudience(c)
}

// typeMatches compares a JWT "typ" with the required one, ignoring case
// and an "application/" prefix (RFC 7515 §4.1.9).
func typeMatches(got, want string) bool {
	trim := func(s string) string {
		s = strings.ToLower(s)
		return strings.TrimPrefix(s, "application/")
	}
	return got != "" && trim(got) == trim(want)
}
