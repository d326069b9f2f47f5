package verifier

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// TokenInfo is what a token says about itself, read without verifying
// anything: for `tokengate check --token`, which compares each value with
// the configuration to explain a decision. Nothing in it is to be trusted.
type TokenInfo struct {
	// JWT is false for an opaque token (one not shaped like a compact
	// JWS); every other field is then empty.
	JWT bool
	// Alg, KeyID and Type are the JWS header's "alg", "kid" and "typ".
	Alg, KeyID, Type string
	// Issuer, Subject and ClientID are "iss", "sub" and the client claim.
	Issuer, Subject, ClientID string
	// Audience is "aud"; Scopes come from "scope" or "scp".
	Audience, Scopes []string
	// Expiry, NotBefore and IssuedAt are "exp", "nbf" and "iat" (zero when
	// absent).
	Expiry, NotBefore, IssuedAt time.Time
}

// Inspect decodes token without verifying it. An opaque token is not an
// error (JWT false); a JWS with malformed claims is.
func Inspect(token string) (*TokenInfo, error) {
	if len(token) > MaxTokenSize {
		return nil, fmt.Errorf("token is longer than %d bytes", MaxTokenSize)
	}
	jws, err := parseCompactJWS(token)
	if errors.Is(err, errNotJWS) {
		return &TokenInfo{}, nil
	}
	if err != nil {
		return nil, err
	}
	c, err := parseClaims(jws.payload)
	if err != nil {
		return nil, err
	}
	return &TokenInfo{
		JWT: true, Alg: string(jws.alg), KeyID: jws.kid, Type: jws.typ,
		Issuer: c.issuer, Subject: c.subject, ClientID: c.clientID,
		Audience: c.audience, Scopes: c.scopes,
		Expiry: c.expiry, NotBefore: c.notBefore, IssuedAt: c.issuedAt,
	}, nil
}

// KeyIDs returns the kids of the keys the issuer holds now and when they
// were last fetched (the zero time for keys held in memory), running
// discovery first if it has not run. It fetches nothing else: what it
// reports is what the last token was checked against.
func (j *JWT) KeyIDs(ctx context.Context) ([]string, time.Time, error) {
	all, fetched, err := j.keys.snapshot(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	var kids []string
	for _, k := range all {
		if !slices.Contains(kids, k.jwk.KeyID) {
			kids = append(kids, k.jwk.KeyID)
		}
	}
	return kids, fetched, nil
}

// ClockSkew is the tolerance this issuer allows on exp, nbf and iat.
func (j *JWT) ClockSkew() time.Duration { return j.o.ClockSkew }
