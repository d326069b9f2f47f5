package verifier

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// MaxTokenSize is the longest token a verifier looks at; longer ones are
// rejected before any parsing.
const MaxTokenSize = 16 << 10

// discoveryRetry is the least time between two failed discovery attempts.
const discoveryRetry = 5 * time.Second

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
	// RefreshCooldown is the least time between two JWKS fetches caused by
	// unknown kids.
	RefreshCooldown time.Duration
	// RefreshInterval refetches keys older than this in the background
	// (triggered by traffic). Default 15m.
	RefreshInterval time.Duration
	// KeepClaims fills Principal.Claims with every claim (needed for claim
	// policies and claim headers). Without it only the registered and
	// scope claims are decoded, which is cheaper.
	KeepClaims bool
	// Now is the clock; default time.Now.
	Now func() time.Time
	// OnJWKSFetch, if set, is called after every JWKS fetch.
	OnJWKSFetch func(err error)
}

// JWT verifies JWT access tokens of one issuer with go-oidc.
type JWT struct {
	o    JWTOptions
	algs []jose.SignatureAlgorithm

	mu           sync.Mutex
	keys         keySource
	verifier     *oidc.IDTokenVerifier
	gen          uint64 // keys.generation() the verifier was built for
	intern       *interner
	discoveredAt time.Time
	discoverErr  error
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
	j := &JWT{o: o, intern: newInterner()}
	for _, a := range o.Algorithms {
		alg := jose.SignatureAlgorithm(a)
		switch alg {
		case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512, jose.ES256, jose.ES384, jose.ES512, jose.EdDSA:
			j.algs = append(j.algs, alg)
		default:
			return nil, fmt.Errorf("verifier: issuer %s: algorithm %q is not allowed with public keys", o.Name, a)
		}
	}
	switch {
	case o.KeySet != nil:
		j.setKeys(o.KeySet)
	case o.JWKSURL != "":
		j.setKeys(j.remote(o.JWKSURL))
	}
	return j, nil
}

// Name is the configured issuer name.
func (j *JWT) Name() string { return j.o.Name }

// Issuer is the "iss" this verifier accepts.
func (j *JWT) Issuer() string { return j.o.Issuer }

func (j *JWT) remote(url string) *RemoteKeySet {
	return NewRemoteKeySet(url, KeySetOptions{Client: j.o.Client, Cooldown: j.o.RefreshCooldown, MaxAge: j.o.RefreshInterval, Now: j.o.Now, OnFetch: j.o.OnJWKSFetch})
}

func (j *JWT) setKeys(ks keySource) {
	j.keys = ks
	j.gen = ks.generation()
	j.verifier = oidc.NewVerifier(j.o.Issuer, goOIDCKeySet(j.o.Name, ks), &oidc.Config{
		SkipClientIDCheck:    true, // aud is checked below against several audiences
		SkipExpiryCheck:      true, // exp, nbf and iat are checked below, with our skew
		SupportedSigningAlgs: j.o.Algorithms,
		Now:                  j.o.Now,
	})
}

// Start runs discovery (if needed) and fetches the keys once, so that
// readiness can be reported and configuration errors surface early.
func (j *JWT) Start(ctx context.Context) error {
	ks, _, err := j.keySet(ctx, true)
	if err != nil {
		return err
	}
	if r, ok := ks.(*RemoteKeySet); ok {
		if err := r.Refresh(ctx); err != nil {
			return fmt.Errorf("issuer %s: fetching JWKS: %w", j.o.Name, err)
		}
	}
	return nil
}

// Ready reports whether the issuer's keys are available.
func (j *JWT) Ready() bool {
	j.mu.Lock()
	ks := j.keys
	j.mu.Unlock()
	if r, ok := ks.(*RemoteKeySet); ok {
		return r.Ready()
	}
	return ks != nil
}

// keySet returns the key set, running OIDC discovery first if needed.
// Failed discovery is retried at most every discoveryRetry unless force.
func (j *JWT) keySet(ctx context.Context, force bool) (keySource, *oidc.IDTokenVerifier, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.keys != nil {
		if g := j.keys.generation(); g != j.gen {
			j.setKeys(j.keys) // the keys changed: go-oidc gets the new set only
		}
		return j.keys, j.verifier, nil
	}
	if !force && j.discoverErr != nil && j.o.Now().Sub(j.discoveredAt) < discoveryRetry {
		return nil, nil, j.discoverErr
	}
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, j.o.Client), j.o.Issuer)
	j.discoveredAt = j.o.Now()
	if err != nil {
		j.discoverErr = fmt.Errorf("issuer %s: OIDC discovery: %w", j.o.Name, err)
		return nil, nil, j.discoverErr
	}
	var meta struct {
		JWKSURL string `json:"jwks_uri"`
	}
	if err := p.Claims(&meta); err != nil || meta.JWKSURL == "" {
		j.discoverErr = fmt.Errorf("issuer %s: discovery document has no jwks_uri", j.o.Name)
		return nil, nil, j.discoverErr
	}
	j.discoverErr = nil
	j.setKeys(j.remote(meta.JWKSURL))
	return j.keys, j.verifier, nil
}

// Verify checks signature, issuer, audience, type and times of token.
//
// The header and claims are decoded here only to choose and check: the
// algorithm must be allowed, the issuer must be this one, and the signing
// key must be known (fetched under the key set's rate limit). go-oidc then
// parses the token and verifies its signature with those keys.
func (j *JWT) Verify(ctx context.Context, token string) (*Principal, error) {
	if len(token) > MaxTokenSize {
		return nil, invalid("token too large", nil)
	}
	hdr, payload, err := splitJWS(token)
	if err != nil || !slices.Contains(j.algs, jose.SignatureAlgorithm(hdr.Alg)) {
		return nil, invalid("malformed token or algorithm not allowed", err)
	}
	if j.o.RequiredType != "" && !typeMatches(hdr.Typ, j.o.RequiredType) {
		return nil, invalid("token type not accepted", fmt.Errorf("typ %q", hdr.Typ))
	}
	c, err := parseClaims(payload, j.o.KeepClaims)
	if err != nil {
		return nil, invalid("malformed claims", err)
	}
	if c.issuer != j.o.Issuer {
		return nil, invalid("issuer not accepted", nil)
	}
	keys, v, err := j.keySet(ctx, false)
	if err != nil {
		return nil, unavailable(j.o.Name, err)
	}
	if _, err := keys.keysFor(ctx, hdr.Kid); err != nil {
		if errors.Is(err, errUnknownKey) {
			return nil, invalid("unknown signing key", err)
		}
		return nil, unavailable(j.o.Name, err)
	}
	if _, err := v.Verify(ctx, token); err != nil {
		return nil, invalid("signature verification failed", err)
	}
	if err := j.checkClaims(c); err != nil {
		return nil, err
	}
	return j.intern.principal(c, j.o.Name), nil
}

// jwsHeader is the part of a JOSE header used to choose and check.
type jwsHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

// splitJWS decodes the header and payload of a compact JWS without
// verifying anything (go-jose parses and verifies it again, fully).
func splitJWS(token string) (jwsHeader, []byte, error) {
	var h jwsHeader
	first := strings.IndexByte(token, '.')
	if first < 0 {
		return h, nil, errors.New("not a compact JWS")
	}
	rest := token[first+1:]
	second := strings.IndexByte(rest, '.')
	if second < 0 || strings.IndexByte(rest[second+1:], '.') >= 0 {
		return h, nil, errors.New("not a compact JWS")
	}
	hb, err := base64.RawURLEncoding.DecodeString(token[:first])
	if err != nil {
		return h, nil, fmt.Errorf("header: %w", err)
	}
	if err := json.Unmarshal(hb, &h); err != nil {
		return h, nil, fmt.Errorf("header: %w", err)
	}
	payload, err := base64.RawURLEncoding.DecodeString(rest[:second])
	if err != nil {
		return h, nil, fmt.Errorf("%w: %v", errPayload, err)
	}
	return h, payload, nil
}

// errPayload: the header decoded (it is a JWS) but the payload did not.
var errPayload = errors.New("payload is not base64url")

func (j *JWT) checkClaims(c *claims) error {
	now, skew := j.o.Now(), j.o.ClockSkew
	switch {
	case c.expiry.IsZero():
		return invalid("token has no expiry", nil)
	case now.After(c.expiry.Add(skew)):
		return invalid("token expired", nil)
	case !c.notBefore.IsZero() && c.notBefore.After(now.Add(skew)):
		return invalid("token not yet valid", nil)
	case !c.issuedAt.IsZero() && c.issuedAt.After(now.Add(skew)):
		return invalid("token issued in the future", nil)
	}
	if j.o.SkipAudienceCheck {
		return nil
	}
	for _, a := range c.audience {
		for _, want := range j.o.Audiences {
			if a == want {
				return nil
			}
		}
	}
	return invalid("audience not accepted", nil)
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
