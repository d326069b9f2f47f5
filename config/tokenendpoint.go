package config

// TokenEndpoint makes tokengate the senders' Token URL (client_credentials).
type TokenEndpoint struct {
	// Name is how routes refer to tokens issued here. Default "local".
	Name string `yaml:"name"`
	// Issuer is the "iss" of issued tokens, normally the public base URL.
	Issuer string `yaml:"issuer"`
	// Path of the token endpoint. Default "/oauth2/token".
	Path string `yaml:"path"`
	// Audience put in "aud". Default: Issuer.
	Audience string `yaml:"audience"`
	// Algorithm "ES256" (default) or "RS256"; used for a generated key.
	Algorithm string `yaml:"algorithm"`
	// SigningKeyFiles are PEM private keys; the first signs, all are
	// published. Empty: a key is generated at start (tokens die with the
	// process; replicas disagree).
	SigningKeyFiles []string `yaml:"signing_key_files"`
	// TokenTTL is the lifetime of issued tokens. Default 1h.
	TokenTTL Duration `yaml:"token_ttl"`
	// SecretCacheTTL: a client secret that passed bcrypt is recognised by a
	// keyed hash held in memory for this long (a returning sender costs
	// microseconds, not a bcrypt comparison; wrong secrets and unknown ids
	// still cost one). Dropped on reload. Default 1h; 0s turns it off.
	SecretCacheTTL *Duration `yaml:"secret_cache_ttl"`
	// ClockSkew tolerated on exp, nbf and iat when tokengate verifies the
	// tokens it issued (replicas' clocks may differ). Default 30s; 0 is
	// allowed.
	ClockSkew *Duration `yaml:"clock_skew"`
	// Clients allowed to obtain tokens.
	Clients []Client `yaml:"clients"`
	// RateLimit bounds token requests.
	RateLimit RateLimit `yaml:"rate_limit"`
	// MaxConcurrentHashChecks caps simultaneous bcrypt comparisons.
	// Default 2.
	MaxConcurrentHashChecks int `yaml:"max_concurrent_hash_checks"`
	// BodyReadTimeout bounds a token request body's arrival (408 past it)
	// and the writing of every answer. Default: body_read_timeout or 10s,
	// whichever is shorter (a token request is a few hundred bytes).
	BodyReadTimeout Duration `yaml:"body_read_timeout"`
}

// Client is one sender allowed to use the token endpoint.
type Client struct {
	// ClientID the sender presents. Required, unique.
	ClientID string `yaml:"client_id"`
	// ClientSecretHash is the bcrypt hash of the secret.
	ClientSecretHash string `yaml:"client_secret_hash"`
	// ClientSecretHashFile is read at load into ClientSecretHash.
	ClientSecretHashFile string `yaml:"client_secret_hash_file"`
	// ClientSecretFile holds the plain secret in a file of its own (a
	// mounted Kubernetes Secret, say); it is read at load and only its
	// bcrypt hash is kept in memory. The secret never sits in the config.
	ClientSecretFile string `yaml:"client_secret_file"`
	// SecretFromFile is the content of ClientSecretFile, for hashing.
	SecretFromFile string `yaml:"-"`
	// ClientSecret is refused by validation: plain secrets never live in
	// the config. It exists so the error can say so.
	ClientSecret string `yaml:"client_secret"`
	// Scopes the client may be granted.
	Scopes []string `yaml:"scopes"`
	// DefaultScopes granted when the request names none. Default: Scopes.
	DefaultScopes []string `yaml:"default_scopes"`
	// TokenTTL overrides TokenEndpoint.TokenTTL for this client.
	TokenTTL Duration `yaml:"token_ttl"`
}

// RateLimit configures token-bucket limits on the token endpoint.
type RateLimit struct {
	// PerClient requests per second per client id. Default 5.
	PerClient float64 `yaml:"per_client"`
	// PerClientBurst default 10.
	PerClientBurst int `yaml:"per_client_burst"`
	// PerIP requests per second per client address. Default 10.
	PerIP float64 `yaml:"per_ip"`
	// PerIPBurst default 20.
	PerIPBurst int `yaml:"per_ip_burst"`
	// PerIPFailures: failed logins per second per client address, checked
	// before any bcrypt work (429 past it). Default 1.
	PerIPFailures float64 `yaml:"per_ip_failures"`
	// PerIPFailureBurst default 10.
	PerIPFailureBurst int `yaml:"per_ip_failure_burst"`
}
