package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/issuer"
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
	tokens  *issuer.Server
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
	var tokens *issuer.Server
	if te := cfg.TokenEndpoint; te != nil {
		if tokens, err = buildIssuer(te, log.Named("token_endpoint")); err != nil {
			return nil, err
		}
		// The proxy trusts the embedded issuer in-process: same verifier
		// and cache as any issuer, keys from memory, no HTTP round trip.
		local, err := verifier.NewJWT(verifier.JWTOptions{
			Name: te.Name, Issuer: te.Issuer, KeySet: verifier.NewStaticKeySet(tokens.PublicKeys()),
			Audiences: []string{te.Audience}, Algorithms: tokens.Algorithms(),
			ClockSkew: config.DefaultClockSkew, RequiredType: issuer.TokenType,
		})
		if err != nil {
			return nil, err
		}
		byIss[te.Issuer] = local
	}
	var introV verifier.Verifier
	introIss := ""
	if intro != nil {
		introV = intro
		for _, is := range cfg.Issuers {
			if is.IsIntrospection() {
				introIss = is.Issuer
			}
		}
	}
	set := verifier.NewSet(byIss, introV, introIss)
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
	var handler http.Handler = h
	if tokens != nil {
		handler = withTokenEndpoint(tokens, h)
	}
	return &stack{cfg: cfg, handler: handler, cache: cache, jwts: jwts, intro: intro, tokens: tokens}, nil
}

// withTokenEndpoint serves the token endpoint's own paths and sends every
// other request to the proxy.
func withTokenEndpoint(tokens *issuer.Server, proxy http.Handler) http.Handler {
	paths := map[string]bool{}
	for _, p := range tokens.Paths() {
		paths[p] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if paths[r.URL.Path] {
			tokens.ServeHTTP(w, r)
			return
		}
		proxy.ServeHTTP(w, r)
	})
}

// buildIssuer loads (or generates) the signing keys and starts the token
// endpoint.
func buildIssuer(te *config.TokenEndpoint, log *zap.Logger) (*issuer.Server, error) {
	var keys []*issuer.Key
	for i, f := range te.SigningKeyFiles {
		k, err := issuer.LoadKeyFile(f)
		if err != nil {
			return nil, fmt.Errorf("token_endpoint.signing_key_files[%d]: %w", i, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		k, err := issuer.GenerateKey(te.Algorithm)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
		log.Warn("NO SIGNING KEY CONFIGURED: generated a throw-away key. Tokens die with this process and replicas will not accept each other's tokens; set token_endpoint.signing_key_files for production.",
			zap.String("kid", k.ID), zap.String("alg", string(k.Alg)))
	}
	clients := make([]issuer.Client, 0, len(te.Clients))
	for _, c := range te.Clients {
		clients = append(clients, issuer.Client{
			ID: c.ClientID, SecretHash: []byte(c.ClientSecretHash), Scopes: c.Scopes,
			DefaultScopes: c.DefaultScopes, TTL: c.TokenTTL.D(),
		})
	}
	return issuer.New(issuer.Options{
		Issuer: te.Issuer, Path: te.Path, Audience: te.Audience, Keys: keys,
		TokenTTL: te.TokenTTL.D(), Clients: clients,
		PerClientRate: te.RateLimit.PerClient, PerClientBurst: te.RateLimit.PerClientBurst,
		PerIPRate: te.RateLimit.PerIP, PerIPBurst: te.RateLimit.PerIPBurst,
		MaxConcurrentHashChecks: te.MaxConcurrentHashChecks, Logger: log,
	})
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
