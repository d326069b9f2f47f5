package stack

import (
	"context"
	"fmt"
	"net/http"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/issuer"
	"github.com/tokengate/tokengate/proxy"
	"github.com/tokengate/tokengate/verifier"
)

// The embedded Token URL: its signing keys, its server, its paths beside
// the proxy's, and the check that ends the tokens of a removed client.

// signingKeys loads the token endpoint's keys, or makes (once per process)
// a throw-away key when none are configured.
func (b *Builder) signingKeys(te *config.TokenEndpoint) ([]*issuer.Key, error) {
	var keys []*issuer.Key
	for i, f := range te.SigningKeyFiles {
		k, err := issuer.LoadKeyFile(f)
		if err != nil {
			return nil, fmt.Errorf("token_endpoint.signing_key_files[%d]: %w", i, err)
		}
		keys = append(keys, k)
	}
	if len(keys) > 0 {
		return keys, nil
	}
	if b.generated == nil || string(b.generated.Alg) != te.Algorithm {
		k, err := issuer.GenerateKey(te.Algorithm)
		if err != nil {
			return nil, err
		}
		b.generated = k
		b.log.Warn("NO SIGNING KEY CONFIGURED: generated a throw-away key. Tokens die with this process and replicas will not accept each other's tokens; set token_endpoint.signing_key_files for production.",
			zap.String("kid", k.ID), zap.String("alg", string(k.Alg)))
	}
	return []*issuer.Key{b.generated}, nil
}

func publicKeys(keys []*issuer.Key) []jose.JSONWebKey {
	out := make([]jose.JSONWebKey, 0, len(keys))
	for _, k := range keys {
		out = append(out, k.Public())
	}
	return out
}

// buildIssuer starts the token endpoint with the given keys.
func (b *Builder) buildIssuer(te *config.TokenEndpoint, keys []*issuer.Key, clientIP func(*http.Request) (string, error), shared *sharedRedis) (*issuer.Server, error) {
	clients := make([]issuer.Client, 0, len(te.Clients))
	for _, c := range te.Clients {
		// A client_secret_file secret is hashed by the issuer, at its clients' highest cost.
		clients = append(clients, issuer.Client{
			ID: c.ClientID, SecretHash: []byte(c.ClientSecretHash), Secret: []byte(c.SecretFromFile),
			Scopes: c.Scopes, DefaultScopes: c.DefaultScopes, TTL: c.TokenTTL.D(),
		})
	}
	o := issuer.Options{
		Issuer: te.Issuer, Path: te.Path, Audience: te.Audience, Keys: keys,
		TokenTTL: te.TokenTTL.D(), Clients: clients,
		PerClientRate: te.RateLimit.PerClient, PerClientBurst: te.RateLimit.PerClientBurst,
		PerIPRate: te.RateLimit.PerIP, PerIPBurst: te.RateLimit.PerIPBurst,
		PerIPFailRate: te.RateLimit.PerIPFailures, PerIPFailBurst: te.RateLimit.PerIPFailureBurst,
		SecretCacheTTL:          secretCacheTTL(te.SecretCacheTTL.D()),
		MaxConcurrentHashChecks: te.MaxConcurrentHashChecks, Logger: b.log.Named("token_endpoint"),
		ClientIP: clientIP, BodyReadTimeout: te.BodyReadTimeout.D(), WriteTimeout: te.BodyReadTimeout.D(),
	}
	if shared != nil {
		o.Shared = shared.limits // replicas share the buckets
	}
	if b.metrics != nil {
		o.OnIssued, o.OnLoginFailed = b.metrics.TokenIssued, b.metrics.LoginFailed
		o.OnLimitFallback = b.metrics.RateLimitFallback
	}
	return issuer.New(o)
}

// secretCacheTTL maps the config's "0s: off" to the issuer's negative.
func secretCacheTTL(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
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

// currentClients refuses tokens of the embedded Token URL whose client is
// no longer configured: a reload that removes a client ends its tokens at
// once, cached verifications included. Each stack holds its own client
// list, so the check follows the configuration being served.
func currentClients(next proxy.Verifier, te *config.TokenEndpoint) proxy.Verifier {
	ids := make(map[string]bool, len(te.Clients))
	for _, c := range te.Clients {
		ids[c.ClientID] = true
	}
	return clientCheck{next: next, source: te.Name, ids: ids}
}

type clientCheck struct {
	next   proxy.Verifier
	source string
	ids    map[string]bool
}

// VerifyFor verifies with next, then refuses a token of the embedded
// Token URL whose client is not in the list.
func (c clientCheck) VerifyFor(ctx context.Context, token string, issuers []string) (*verifier.Principal, error) {
	p, err := c.next.VerifyFor(ctx, token, issuers)
	if err == nil && p.Source == c.source && !c.ids[p.ClientID] {
		return nil, &verifier.InvalidError{Reason: "client no longer registered"}
	}
	return p, err
}
