// Package verifier checks bearer tokens.
//
// A Verifier returns a *Principal, or an error that matches ErrInvalidToken
// (the token is not acceptable: 401) or ErrUnavailable (an identity provider
// could not be asked: 503). JWT verifies JWT access tokens of one issuer:
// the compact JWS is decoded once (jws.go) and its signature checked with
// crypto/rsa, crypto/ecdsa or crypto/ed25519 against the issuer's JWKS keys
// (parsed by go-jose; found by go-oidc's discovery or given), which a
// RemoteKeySet refetches for unknown key ids under a token bucket and
// revalidates periodically; claims are read with exact names (jsonobj.go).
// Introspection asks an RFC 7662 endpoint, within a concurrency and rate
// bound; Set picks the issuer for a token among a route's; Cache remembers
// verifications by the SHA-256 of the token and merges concurrent misses.
//
//	jwt, _ := verifier.NewJWT(verifier.JWTOptions{
//		Name: "idp", Issuer: "https://idp.example.com/",
//		Audiences: []string{"https://hooks.example.com"},
//		Algorithms: []string{"RS256", "ES256"}, ClockSkew: 30 * time.Second,
//	})
//	v, _ := verifier.NewCache(jwt, verifier.CacheOptions{MaxEntries: 100000, MaxTTL: 5 * time.Minute})
//	p, err := v.Verify(ctx, token)
package verifier
