package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/proxy"
	"github.com/tokengate/tokengate/verifier"
)

// stack is everything built from one configuration.
type stack struct {
	cfg     *config.Config
	handler http.Handler
	cache   *verifier.Cache
	jwts    []*verifier.JWT
	intro   *verifier.Introspection
}

// buildVerifiers builds one verifier per configured issuer, without network
// calls.
func buildVerifiers(cfg *config.Config, log *zap.Logger) (map[string]verifier.Verifier, []*verifier.JWT, *verifier.Introspection, error) {
	byIss := map[string]verifier.Verifier{}
	var jwts []*verifier.JWT
	var intro *verifier.Introspection
	var errs []error
	for i, is := range cfg.Issuers {
		v, err := newIssuer(is, log)
		if err != nil {
			errs = append(errs, fmt.Errorf("issuers[%d]: %w", i, err))
			continue
		}
		switch v := v.(type) {
		case *verifier.Introspection:
			intro = v
		case *verifier.JWT:
			jwts = append(jwts, v)
			byIss[is.Issuer] = v
		}
	}
	return byIss, jwts, intro, errors.Join(errs...)
}

// newIssuer builds the verifier of one issuer: introspection or JWT.
func newIssuer(is config.Issuer, log *zap.Logger) (verifier.Verifier, error) {
	if in := is.Introspection; in != nil {
		return verifier.NewIntrospection(verifier.IntrospectionOptions{
			Name: is.Name, URL: in.URL, ClientID: in.ClientID, ClientSecret: in.ClientSecret,
			PostAuth: in.AuthMethod == config.AuthClientSecretPost, Issuer: is.Issuer,
			Audiences: is.Audiences, Client: &http.Client{Timeout: in.Timeout.D()},
		})
	}
	name := is.Name
	return verifier.NewJWT(verifier.JWTOptions{
		Name: is.Name, Issuer: is.Issuer, JWKSURL: is.JWKSURL, Audiences: is.Audiences,
		SkipAudienceCheck: is.InsecureSkipAudienceCheck, Algorithms: is.Algorithms,
		ClockSkew: is.ClockSkew.D(), RequiredType: is.RequiredType,
		Client: &http.Client{Timeout: is.Timeout.D()}, RefreshCooldown: is.JWKSRefreshCooldown.D(),
		OnJWKSFetch: func(err error) {
			if err != nil {
				log.Warn("JWKS fetch failed", zap.String("issuer", name), zap.Error(err))
			} else {
				log.Info("JWKS fetched", zap.String("issuer", name))
			}
		},
	})
}

// build wires a validated configuration into a handler.
func build(cfg *config.Config, log *zap.Logger) (*stack, error) {
	byIss, jwts, intro, err := buildVerifiers(cfg, log)
	if err != nil {
		return nil, err
	}
	var introV verifier.Verifier
	if intro != nil {
		introV = intro
	}
	set := verifier.NewSet(byIss, introV)
	cache, err := verifier.NewCache(set, verifier.CacheOptions{
		MaxEntries: cfg.Cache.MaxEntries, MaxTTL: cfg.Cache.MaxTTL.D(),
		NegativeTTL: cfg.Cache.NegativeTTL.D(), NegativeMaxEntries: cfg.Cache.NegativeMaxEntries,
	})
	if err != nil {
		return nil, err
	}
	h, err := proxy.New(cfg, cache, proxy.Options{Logger: log.Named("access")})
	if err != nil {
		return nil, err
	}
	return &stack{cfg: cfg, handler: h, cache: cache, jwts: jwts, intro: intro}, nil
}

// warmUp runs discovery and fetches every JWT issuer's keys once, in the
// background; failures are logged and retried on demand.
func (s *stack) warmUp(ctx context.Context, log *zap.Logger) {
	for _, j := range s.jwts {
		go func() {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := j.Start(ctx); err != nil {
				log.Warn("issuer not ready yet; requests for it get 503 until it is", zap.String("issuer", j.Name()), zap.Error(err))
			}
		}()
	}
}

// ready reports whether every JWT issuer's keys were fetched once.
func (s *stack) ready() error {
	for _, j := range s.jwts {
		if !j.Ready() {
			return fmt.Errorf("issuer %s: keys not fetched yet", j.Name())
		}
	}
	return nil
}
