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
	setStr(&c.Listen, DefaultListen)
	setStr(&c.AdminListen, DefaultAdminListen)
	setStr(&c.Realm, DefaultRealm)
	setDur(&c.ShutdownGrace, DefaultShutdownGrace)
	setDur(&c.RetryAfter, DefaultRetryAfter)
	setDur(&c.BodyReadTimeout, DefaultBodyReadTimeout)
	setDur(&c.IdleTimeout, DefaultIdleTimeout)
	u := &c.Upstream
	setDur(&u.DialTimeout, DefaultDialTimeout)
	setDur(&u.ResponseTimeout, DefaultResponseTimeout)
	if u.MaxBodySize == 0 {
		u.MaxBodySize = DefaultMaxBodyBytes
	}
	if u.MaxIdleConns == 0 {
		u.MaxIdleConns = DefaultMaxIdleConns
	}
	if t := c.TLS; t != nil && t.ClientCAFile != "" && t.ClientAuth == "" {
		t.ClientAuth = ClientAuthRequire
	}
	for i := range c.Issuers {
		is := &c.Issuers[i]
		if len(is.Algorithms) == 0 {
			is.Algorithms = slices.Clone(DefaultAlgorithms)
		}
		if is.ClockSkew == nil {
			d := Duration(DefaultClockSkew)
			is.ClockSkew = &d
		}
		setDur(&is.Timeout, DefaultIssuerTimeout)
		setDur(&is.JWKSRefreshCooldown, DefaultJWKSRefreshCooldown)
		setDur(&is.JWKSRefreshInterval, DefaultJWKSRefreshInterval)
		if in := is.Introspection; in != nil {
			setStr(&in.AuthMethod, AuthClientSecretBasic)
			setDur(&in.Timeout, DefaultIssuerTimeout)
			if in.MaxConcurrent == 0 {
				in.MaxConcurrent = DefaultIntrospectionConcurrency
			}
			if in.RatePerSecond == 0 {
				in.RatePerSecond = DefaultIntrospectionRate
			}
			if in.Burst == 0 {
				in.Burst = DefaultIntrospectionBurst
			}
		}
	}
	if c.Cache.MaxEntries == 0 {
		c.Cache.MaxEntries = DefaultCacheMaxEntries
	}
	setDur(&c.Cache.MaxTTL, DefaultCacheMaxTTL)
	if c.Cache.NegativeTTL == nil {
		d := Duration(DefaultNegativeTTL)
		c.Cache.NegativeTTL = &d
	}
	if c.Cache.NegativeMaxEntries == 0 {
		c.Cache.NegativeMaxEntries = max(c.Cache.MaxEntries/10, 1)
	}
	setStr(&c.Headers.IdentityPrefix, DefaultIdentityPrefix)
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
	if te := c.TokenEndpoint; te != nil {
		setStr(&te.Name, DefaultTokenEndpointName)
		setStr(&te.Path, DefaultTokenPath)
		setStr(&te.Algorithm, DefaultTokenAlgorithm)
		setStr(&te.Audience, te.Issuer)
		setDur(&te.TokenTTL, DefaultTokenTTL)
		rl := &te.RateLimit
		if rl.PerClient == 0 {
			rl.PerClient = DefaultPerClientRate
		}
		if rl.PerClientBurst == 0 {
			rl.PerClientBurst = DefaultPerClientBurst
		}
		if rl.PerIP == 0 {
			rl.PerIP = DefaultPerIPRate
		}
		if rl.PerIPBurst == 0 {
			rl.PerIPBurst = DefaultPerIPBurst
		}
		if te.MaxConcurrentHashChecks == 0 {
			te.MaxConcurrentHashChecks = DefaultMaxHashChecks
		}
		for i := range te.Clients {
			cl := &te.Clients[i]
			if cl.DefaultScopes == nil {
				cl.DefaultScopes = slices.Clone(cl.Scopes)
			}
		}
	}
}

func setStr(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

func setDur(p *Duration, v time.Duration) {
	if *p == 0 {
		*p = Duration(v)
	}
}
