package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/telemetry"
	"github.com/tokengate/tokengate/issuer"
	"github.com/tokengate/tokengate/proxy"
	"github.com/tokengate/tokengate/verifier"
)

// stack is everything built from one configuration. A reload builds a new
// stack and swaps it in; requests in flight finish on the old one.
type stack struct {
	cfg       *config.Config
	handler   http.Handler
	cache     *verifier.Cache
	jwts      []*verifier.JWT
	embedded  *verifier.JWT // the token endpoint's own issuer, nil without one
	tokens    *issuer.Server
	keys      []*issuer.Key
	transport *http.Transport
	verifyKey string // identity of the verification setup; equal → reuse
	stopWarm  context.CancelFunc
	// replayHealth reports the Redis replay store's health (nil: none).
	replayHealth func() error
}

// builder builds stacks; it outlives reloads.
type builder struct {
	log     *zap.Logger
	metrics *telemetry.Metrics // nil: no metrics
	// keepClaims: some route or header uses claims beyond the registered
	// ones, so JWT verifiers keep them all (set per build).
	keepClaims bool
	// generated is the throw-away signing key made when the token endpoint
	// has no key files; kept across reloads so tokens stay valid.
	generated *issuer.Key
	// replay is the signed-webhook replay store, kept across reloads;
	// pending is a new one built for a stack that does not serve yet.
	replay, pending *replayHolder
}

// newIssuer builds the verifier of one issuer: introspection or JWT.
func (b *builder) newIssuer(is config.Issuer) (verifier.Verifier, error) {
	name := is.Name
	if in := is.Introspection; in != nil {
		o := verifier.IntrospectionOptions{
			Name: is.Name, URL: in.URL, ClientID: in.ClientID, ClientSecret: in.ClientSecret,
			PostAuth: in.Auth == config.IntrospectionAuthPost, NoAuth: in.Auth == config.IntrospectionAuthNone, Issuer: is.Issuer,
			Audiences: is.Audiences, SkipAudienceCheck: is.InsecureSkipAudienceCheck,
			Client:        &http.Client{Timeout: in.Timeout.D()},
			MaxConcurrent: in.MaxConcurrent, RatePerSecond: in.RatePerSecond, Burst: in.Burst,
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
		KeepClaims:      b.keepClaims,
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
func (b *builder) onVerify(path string) func(time.Duration, error) {
	if b.metrics == nil {
		return nil
	}
	return b.metrics.Verified(path)
}

// build wires a validated configuration. When prev verifies exactly as the
// new configuration would, its verifiers, keys and cache are kept, so a
// reload that only changes routes or clients loses no cached token.
func (b *builder) build(cfg *config.Config, prev *stack) (*stack, error) {
	vk, err := verificationKey(cfg)
	if err != nil {
		return nil, err
	}
	b.keepClaims = usesClaims(cfg)
	if b.keepClaims {
		vk += "+claims"
	}
	st := &stack{cfg: cfg, verifyKey: vk}
	if !cfg.Receiving() {
		st.handler = notReceiving()
		return st, nil
	}
	if prev != nil && prev.verifyKey == vk && prev.cache != nil {
		st.cache, st.jwts, st.keys, st.embedded = prev.cache, prev.jwts, prev.keys, prev.embedded
	} else if err := b.buildVerifiers(cfg, st); err != nil {
		return nil, err
	}
	fwd, err := proxy.NewForwarding(cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	if te := cfg.TokenEndpoint; te != nil {
		if st.tokens, err = b.buildIssuer(te, st.keys, fwd.ClientIP); err != nil {
			return nil, err
		}
	}
	if prev != nil && prev.transport != nil && reflect.DeepEqual(prev.cfg.Upstream, cfg.Upstream) {
		st.transport = prev.transport
	} else {
		if st.transport, err = proxy.NewTransport(cfg.Upstream); err != nil {
			return nil, err
		}
		if cfg.Upstream.InsecureSkipTLSVerify {
			b.log.Warn("upstream.insecure_skip_tls_verify is ON: the receiver's certificate is NOT verified; anyone on the path can impersonate it")
		}
	}
	sigs, err := b.signatureVerifiers(cfg)
	if err != nil {
		return nil, err
	}
	st.replayHealth = b.replayHealth(cfg)
	opts := proxy.Options{Logger: b.log.Named("access"), Transport: st.transport, Forwarding: fwd, Signatures: sigs}
	if b.metrics != nil {
		opts.Observer = b.metrics
	}
	var v proxy.Verifier = st.cache
	if st.tokens != nil {
		v = currentClients(v, cfg.TokenEndpoint)
	}
	h, err := proxy.New(cfg, v, opts)
	if err != nil {
		return nil, err
	}
	st.handler = h
	if st.tokens != nil {
		st.handler = withTokenEndpoint(st.tokens, h)
	}
	return st, nil
}

// buildVerifiers makes every issuer's verifier, the dispatching set and the
// cache in front of it, without network calls.
func (b *builder) buildVerifiers(cfg *config.Config, st *stack) error {
	var jwts []verifier.Issuer
	var intro *verifier.Issuer
	var errs []error
	for i, is := range cfg.Issuers {
		v, err := b.newIssuer(is)
		if err != nil {
			errs = append(errs, fmt.Errorf("issuers[%d]: %w", i, err))
			continue
		}
		switch v := v.(type) {
		case *verifier.Introspection:
			intro = &verifier.Issuer{Name: is.Name, Iss: is.Issuer, Verifier: v}
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
			KeepClaims: b.keepClaims, OnVerify: b.onVerify(telemetry.PathEmbedded),
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

// signingKeys loads the token endpoint's keys, or makes (once per process)
// a throw-away key when none are configured.
func (b *builder) signingKeys(te *config.TokenEndpoint) ([]*issuer.Key, error) {
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
func (b *builder) buildIssuer(te *config.TokenEndpoint, keys []*issuer.Key, clientIP func(*http.Request) string) (*issuer.Server, error) {
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
	if b.metrics != nil {
		o.OnIssued, o.OnLoginFailed = b.metrics.TokenIssued, b.metrics.LoginFailed
	}
	return issuer.New(o)
}

// usesClaims reports whether a route policy or a header needs claims
// beyond the registered and scope claims.
func usesClaims(cfg *config.Config) bool {
	if len(cfg.Headers.Claims) > 0 {
		return true
	}
	for _, r := range cfg.Routes {
		if len(r.Require.Claims) > 0 {
			return true
		}
	}
	return false
}

// verificationKey identifies everything that decides how a token verifies:
// issuers, cache settings, and the token endpoint's identity and keys
// (including the key files' contents). Routes and clients are not in it.
func verificationKey(cfg *config.Config) (string, error) {
	v := struct {
		Issuers []config.Issuer
		Cache   config.Cache
		TE      any
	}{Issuers: cfg.Issuers, Cache: cfg.Cache}
	if te := cfg.TokenEndpoint; te != nil {
		var sums []string
		for _, f := range te.SigningKeyFiles {
			b, err := os.ReadFile(f)
			if err != nil {
				return "", fmt.Errorf("token_endpoint.signing_key_files: %w", err)
			}
			s := sha256.Sum256(b)
			sums = append(sums, fmt.Sprintf("%x", s))
		}
		v.TE = []any{te.Name, te.Issuer, te.Audience, te.Algorithm, sums, te.ClockSkew.D()}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%x", sha256.Sum256(b)), nil
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

func (c clientCheck) VerifyFor(ctx context.Context, token string, issuers []string) (*verifier.Principal, error) {
	p, err := c.next.VerifyFor(ctx, token, issuers)
	if err == nil && p.Source == c.source && !c.ids[p.ClientID] {
		return nil, &verifier.InvalidError{Reason: "client no longer registered"}
	}
	return p, err
}

// notReceiving answers on the public listener of a process whose
// configuration has no receiving side any more (reloaded to egress only).
func notReceiving() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":"not_found","error_description":"this tokengate has no receiving side configured"}` + "\n"))
	})
}

// secretCacheTTL maps the config's "0s: off" to the issuer's negative.
func secretCacheTTL(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
