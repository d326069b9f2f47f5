package stack

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/telemetry"
	"github.com/tokengate/tokengate/issuer"
	"github.com/tokengate/tokengate/verifier"
)

// Issuer builds the verifier of one configured issuer, introspection or
// JWT, without a network call (check probes each with it).
func (b *Builder) Issuer(is config.Issuer) (verifier.Verifier, error) {
	name := is.Name
	if in := is.Introspection; in != nil {
		o := verifier.IntrospectionOptions{
			Name: is.Name, URL: in.URL, ClientID: in.ClientID, ClientSecret: in.ClientSecret,
			PostAuth: in.Auth == config.IntrospectionAuthPost, NoAuth: in.Auth == config.IntrospectionAuthNone, Issuer: is.Issuer,
			Audiences: is.Audiences, SkipAudienceCheck: is.InsecureSkipAudienceCheck,
			Client:        &http.Client{Timeout: in.Timeout.D()},
			MaxConcurrent: in.MaxConcurrent, RatePerSecond: in.RatePerSecond, Burst: in.Burst,
			ClaimNames: b.claimNames,
		}
		if b.metrics != nil {
			o.OnCall = func(err error) { b.metrics.Introspected(name, errors.Is(err, verifier.ErrUnavailable)) }
		}
		o.OnVerify = b.onVerify(telemetry.PathIntrospection)
		return verifier.NewIntrospection(o)
	}
	return verifier.NewJWT(verifier.JWTOptions{
		Name: is.Name, Issuer: is.Issuer, JWKSURL: is.JWKSURL, Audiences: is.Audiences,
		SkipAudienceCheck: is.InsecureSkipAudienceCheck, Algorithms: is.Algorithms,
		ClockSkew: is.ClockSkew.D(), RequiredType: is.RequiredType,
		Client: &http.Client{Timeout: is.Timeout.D()}, RefreshCooldown: is.JWKSRefreshCooldown.D(),
		KeepClaims: b.keepClaims, ClaimNames: b.claimNames,
		RefreshInterval: is.JWKSRefreshInterval.D(),
		OnJWKSFetch: func(err error) {
			if b.metrics != nil {
				b.metrics.JWKSFetched(name, err)
			}
			if err != nil {
				b.log.Warn("JWKS fetch failed", zap.String("issuer", name), zap.Error(err))
			} else {
				b.log.Debug("JWKS fetched", zap.String("issuer", name))
			}
		},
		OnJWKSWarning: func(msg string) { b.log.Warn(msg, zap.String("issuer", name)) },
		OnVerify:      b.onVerify(telemetry.PathJWT),
	})
}

// onVerify records verification times of one path, or is nil without
// metrics.
func (b *Builder) onVerify(path string) func(time.Duration, error) {
	if b.metrics == nil {
		return nil
	}
	return b.metrics.Verified(path)
}

// buildVerifiers makes every issuer's verifier, the dispatching set and the
// cache in front of it, without network calls.
func (b *Builder) buildVerifiers(cfg *config.Config, st *Stack) error {
	var jwts []verifier.Issuer
	var intro *verifier.Issuer
	var errs []error
	for i, is := range cfg.Issuers {
		v, err := b.Issuer(is)
		if err != nil {
			errs = append(errs, fmt.Errorf("issuers[%d]: %w", i, err))
			continue
		}
		switch v := v.(type) {
		case *verifier.Introspection:
			intro = &verifier.Issuer{Name: is.Name, Iss: is.Issuer, Verifier: v}
			st.intro = v
		case *verifier.JWT:
			st.jwts = append(st.jwts, v)
			jwts = append(jwts, verifier.Issuer{Name: is.Name, Iss: is.Issuer, Verifier: v})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if te := cfg.TokenEndpoint; te != nil {
		keys, err := b.signingKeys(te)
		if err != nil {
			return err
		}
		st.keys = keys
		// The proxy trusts the embedded issuer in-process: same verifier
		// and cache as any issuer, keys from memory, no HTTP round trip.
		var pub []string
		jwks, err := verifier.NewStaticKeySet(publicKeys(keys))
		if err != nil {
			return err
		}
		for _, k := range keys {
			pub = append(pub, string(k.Alg))
		}
		local, err := verifier.NewJWT(verifier.JWTOptions{
			Name: te.Name, Issuer: te.Issuer, KeySet: jwks, Audiences: []string{te.Audience},
			Algorithms: pub, ClockSkew: te.ClockSkew.D(), RequiredType: issuer.TokenType,
			KeepClaims: b.keepClaims, ClaimNames: b.claimNames, OnVerify: b.onVerify(telemetry.PathEmbedded),
		})
		if err != nil {
			return err
		}
		st.embedded = local
		jwts = append(jwts, verifier.Issuer{Name: te.Name, Iss: te.Issuer, Verifier: local})
	}
	co := verifier.CacheOptions{
		MaxEntries: cfg.Cache.MaxEntries, MaxTTL: cfg.Cache.MaxTTL.D(),
		NegativeTTL: cfg.Cache.NegativeTTL.D(), NegativeMaxEntries: cfg.Cache.NegativeMaxEntries,
	}
	if b.metrics != nil {
		co.OnHit, co.OnMiss, co.OnEvict = b.metrics.CacheHooks()
	}
	var err error
	st.cache, err = verifier.NewCache(verifier.NewSet(jwts, intro), co)
	return err
}
