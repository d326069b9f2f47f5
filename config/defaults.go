package config

import (
	"slices"
	"strings"
	"time"
)

// Token endpoint defaults.
const (
	DefaultTokenEndpointName = "local"
	DefaultTokenPath         = "/oauth2/token"
	DefaultTokenAlgorithm    = "ES256"
	DefaultTokenTTL          = time.Hour
	DefaultPerClientRate     = 5
	DefaultPerClientBurst    = 10
	DefaultPerIPRate         = 10
	DefaultPerIPBurst        = 20
	DefaultMaxHashChecks     = 2
)

// applyDefaults fills every unset field with its documented default.
func (c *Config) applyDefaults() {
	setDefault(&c.Listen, DefaultListen)
	setDefault(&c.AdminListen, DefaultAdminListen)
	setDefault(&c.Realm, DefaultRealm)
	setDefault(&c.ShutdownGrace, Duration(DefaultShutdownGrace))
	setDefault(&c.RetryAfter, Duration(DefaultRetryAfter))
	setDefault(&c.BodyReadTimeout, Duration(DefaultBodyReadTimeout))
	setDefault(&c.IdleTimeout, Duration(DefaultIdleTimeout))
	c.Upstream.applyDefaults()
	c.Redis.applyDefaults()
	c.TLS.applyDefaults()
	for i := range c.Issuers {
		is := &c.Issuers[i]
		if len(is.Algorithms) == 0 {
			is.Algorithms = slices.Clone(DefaultAlgorithms)
		}
		if is.ClockSkew == nil {
			d := Duration(DefaultClockSkew)
			is.ClockSkew = &d
		}
		setDefault(&is.Timeout, Duration(DefaultIssuerTimeout))
		setDefault(&is.JWKSRefreshCooldown, Duration(DefaultJWKSRefreshCooldown))
		setDefault(&is.JWKSRefreshInterval, Duration(DefaultJWKSRefreshInterval))
		if in := is.Introspection; in != nil {
			switch {
			case in.Auth != "":
			case in.AuthMethod == AuthClientSecretPost:
				in.Auth = IntrospectionAuthPost
			default: // client_secret_basic, unset, or invalid (reported)
				in.Auth = IntrospectionAuthBasic
			}
			setDefault(&in.Timeout, Duration(DefaultIssuerTimeout))
			setDefault(&in.MaxConcurrent, DefaultIntrospectionConcurrency)
			setDefault(&in.RatePerSecond, DefaultIntrospectionRate)
			setDefault(&in.Burst, DefaultIntrospectionBurst)
		}
	}
	setDefault(&c.Cache.MaxEntries, DefaultCacheMaxEntries)
	setDefault(&c.Cache.MaxTTL, Duration(DefaultCacheMaxTTL))
	if c.Cache.NegativeTTL == nil {
		d := Duration(DefaultNegativeTTL)
		c.Cache.NegativeTTL = &d
	}
	setDefault(&c.Cache.NegativeMaxEntries, max(c.Cache.MaxEntries/10, 1))
	setDefault(&c.Headers.IdentityPrefix, DefaultIdentityPrefix)
	if c.Headers.Identity == nil {
		c.Headers.Identity = []string{IdentitySubject, IdentityClientID, IdentityScope, IdentityIssuer}
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		for j, m := range r.Methods {
			r.Methods[j] = strings.ToUpper(m)
		}
		if r.Name == "" {
			r.Name = r.Path + r.PathPrefix
		}
	}
	c.egressDefaults()
	c.signatureDefaults()
	c.deliveryDefaults()
	if te := c.TokenEndpoint; te != nil {
		setDefault(&te.Name, DefaultTokenEndpointName)
		setDefault(&te.Path, DefaultTokenPath)
		setDefault(&te.Algorithm, DefaultTokenAlgorithm)
		setDefault(&te.Audience, te.Issuer)
		setDefault(&te.TokenTTL, Duration(DefaultTokenTTL))
		if te.ClockSkew == nil {
			d := Duration(DefaultClockSkew)
			te.ClockSkew = &d
		}
		rl := &te.RateLimit
		setDefault(&rl.PerClient, DefaultPerClientRate)
		setDefault(&rl.PerClientBurst, DefaultPerClientBurst)
		setDefault(&rl.PerIP, DefaultPerIPRate)
		setDefault(&rl.PerIPBurst, DefaultPerIPBurst)
		setDefault(&rl.PerIPFailures, DefaultPerIPFailures)
		setDefault(&rl.PerIPFailureBurst, DefaultPerIPFailureBurst)
		if te.SecretCacheTTL == nil {
			d := Duration(DefaultSecretCacheTTL)
			te.SecretCacheTTL = &d
		}
		setDefault(&te.MaxConcurrentHashChecks, DefaultMaxHashChecks)
		setDefault(&te.BodyReadTimeout, min(c.BodyReadTimeout, Duration(DefaultTokenBodyReadTimeout)))
		for i := range te.Clients {
			cl := &te.Clients[i]
			if cl.DefaultScopes == nil {
				cl.DefaultScopes = slices.Clone(cl.Scopes)
			}
		}
	}
}

// applyDefaults fills an upstream's unset timeouts and limits.
func (u *Upstream) applyDefaults() {
	setDefault(&u.DialTimeout, Duration(DefaultDialTimeout))
	setDefault(&u.ResponseTimeout, Duration(DefaultResponseTimeout))
	setDefault(&u.MaxBodySize, DefaultMaxBodyBytes)
	setDefault(&u.MaxIdleConns, DefaultMaxIdleConns)
}

// applyDefaults: a client CA without client_auth means "require".
func (t *TLS) applyDefaults() {
	if t != nil && t.ClientCAFile != "" && t.ClientAuth == "" {
		t.ClientAuth = ClientAuthRequire
	}
}

// setDefault sets *p to v when it is the zero value (unset in the YAML).
func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}
