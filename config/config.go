package config

import (
	"crypto/x509"
	"time"
)

// Defaults applied by Load to fields the YAML leaves unset.
const (
	DefaultListen              = ":8080"
	DefaultAdminListen         = "127.0.0.1:9090"
	DefaultShutdownGrace       = 30 * time.Second
	DefaultDialTimeout         = 5 * time.Second
	DefaultResponseTimeout     = 30 * time.Second
	DefaultMaxBodyBytes        = 10 << 20 // 10 MiB
	DefaultMaxIdleConns        = 256
	DefaultClockSkew           = 30 * time.Second
	DefaultIssuerTimeout       = 5 * time.Second
	DefaultJWKSRefreshCooldown = 30 * time.Second
	DefaultJWKSRefreshInterval = time.Minute
	DefaultBodyReadTimeout     = 60 * time.Second
	// DefaultPerIPFailures and DefaultPerIPFailureBurst bound failed token
	// requests per client address.
	DefaultPerIPFailures     = 1.0
	DefaultPerIPFailureBurst = 10
	// DefaultSecretCacheTTL: how long a secret that passed bcrypt is known
	// by its keyed hash.
	DefaultSecretCacheTTL = time.Hour
	// DefaultTokenBodyReadTimeout bounds a token request (a few hundred
	// bytes) unless body_read_timeout is shorter.
	DefaultTokenBodyReadTimeout     = 10 * time.Second
	DefaultIdleTimeout              = 120 * time.Second
	DefaultIntrospectionConcurrency = 16
	DefaultIntrospectionRate        = 50
	DefaultIntrospectionBurst       = 100
	DefaultCacheMaxEntries          = 100_000
	DefaultCacheMaxTTL              = 5 * time.Minute
	DefaultNegativeTTL              = 10 * time.Second
	DefaultRetryAfter               = 5 * time.Second
	DefaultIdentityPrefix           = "X-Auth-"
	DefaultRealm                    = "tokengate"
	AuthClientSecretBasic           = "client_secret_basic"
	AuthClientSecretPost            = "client_secret_post"
	// Introspection.Auth values.
	IntrospectionAuthBasic = "basic"
	IntrospectionAuthPost  = "post"
	IntrospectionAuthNone  = "none"
)

// ShutdownOverrun is the most a SIGTERM shutdown runs past shutdown_grace:
// the final export of queued spans (tracing on) gets what is left of the
// grace, at most 5s, and at least this long when the drain used all of
// it. (An egress refresh-token refresh already at the vendor is waited
// for too, within its token timeout.) A Kubernetes
// terminationGracePeriodSeconds must exceed shutdown_grace plus this.
const ShutdownOverrun = time.Second

// DefaultAlgorithms is the JWT signature algorithm allow-list used when an
// issuer sets none: asymmetric algorithms only. HMAC ("HS*") and "none" are
// never accepted with keys from a JWKS.
var DefaultAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// Config is the whole tokengate configuration file.
type Config struct {
	// Listen is the public address webhook senders reach. Default ":8080".
	Listen string `yaml:"listen"`
	// AdminListen serves /healthz, /readyz and /metrics. Default
	// "127.0.0.1:9090" (loopback: metrics and readiness are not for the
	// senders); the Helm chart binds the pod IP for the kubelet's probes.
	// It must differ from Listen.
	AdminListen string `yaml:"admin_listen"`
	// ShutdownGrace is how long in-flight requests may run after SIGTERM.
	// Default 30s.
	ShutdownGrace Duration `yaml:"shutdown_grace"`
	// Realm is the realm named in WWW-Authenticate. Default "tokengate".
	Realm string `yaml:"realm"`
	// RetryAfter is the Retry-After sent with 503 when an identity provider
	// cannot be reached. Default 5s.
	RetryAfter Duration `yaml:"retry_after"`

	// BodyReadTimeout bounds reading a forwarded request's body: a sender
	// that trickles its body is cut off after it. Default 60s.
	BodyReadTimeout Duration `yaml:"body_read_timeout"`
	// IdleTimeout closes keep-alive connections idle this long. Default 120s.
	IdleTimeout Duration `yaml:"idle_timeout"`

	// TLS, when set, makes the public listener serve HTTPS.
	TLS *TLS `yaml:"tls"`
	// TrustedProxies are the CIDRs (or addresses) of proxies in front of
	// tokengate. Only from these peers are X-Forwarded-For/-Proto/-Host
	// kept and extended; from anyone else they are replaced. The client
	// address in logs and rate limits is resolved through them: the
	// right-most X-Forwarded-For entry not among them (ip, ip:port, [ipv6]
	// or [ipv6]:port); a request whose entry there is not an address is
	// refused 400. Default: none (the peer is the client).
	TrustedProxies []string `yaml:"trusted_proxies"`

	Upstream      Upstream       `yaml:"upstream"`
	Issuers       []Issuer       `yaml:"issuers"`
	Cache         Cache          `yaml:"cache"`
	Routes        []Route        `yaml:"routes"`
	Headers       Headers        `yaml:"headers"`
	TokenEndpoint *TokenEndpoint `yaml:"token_endpoint"`
	// Egress entries are the calling side: outbound requests that get a
	// bearer token added (see Egress).
	Egress []Egress `yaml:"egress"`
	// Signatures are the settings shared by routes with a signature
	// policy: the replay store and the memory bound on signed bodies.
	Signatures Signatures `yaml:"signatures"`
	Queue      Queue      `yaml:"queue"` // where queued routes keep messages (delivery.go)
	// Redis, when set, is the server replicas share state through
	// (redis.go).
	Redis *Redis `yaml:"redis"`
	// Telemetry configures OpenTelemetry tracing (telemetry.go).
	Telemetry Telemetry `yaml:"telemetry"`

	lines    map[string]int  // YAML path → line, for messages
	envPaths map[string]bool // YAML paths whose value came from one ${VAR}
	envRefs  map[string]bool // YAML paths whose value held any ${VAR}
}

// Upstream is the receiver tokengate forwards authorized requests to. In YAML
// it is either a URL string or a mapping with the fields below.
type Upstream struct {
	// URL of the receiver, http or https. Required.
	URL string `yaml:"url"`
	// DialTimeout bounds connecting to the receiver. Default 5s.
	DialTimeout Duration `yaml:"dial_timeout"`
	// ResponseTimeout bounds waiting for the receiver's response headers
	// after the request was sent; past it the sender gets 504. Default 30s.
	ResponseTimeout Duration `yaml:"response_timeout"`
	// MaxBodySize is the largest request body forwarded, in bytes ("10MiB"
	// style suffixes accepted); larger bodies get 413. Default 10 MiB.
	MaxBodySize ByteSize `yaml:"max_body_size"`
	// MaxIdleConns is the idle connection pool kept to the receiver.
	// Default 256.
	MaxIdleConns int `yaml:"max_idle_conns"`
	// CAFile verifies an https receiver's certificate instead of the system
	// roots (a private or self-signed CA).
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate for mTLS to the receiver.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name the receiver's certificate must carry.
	ServerName string `yaml:"server_name"`
	// InsecureSkipTLSVerify accepts ANY certificate from the receiver. It
	// MUST NOT be used beyond a laptop: it makes TLS to the receiver
	// worthless. tokengate logs a warning at every start.
	InsecureSkipTLSVerify bool `yaml:"insecure_skip_tls_verify"`
}

// TLS configures HTTPS on the public listener. Certificates are re-read
// when the files change; a broken new pair keeps the old one serving.
type TLS struct {
	// CertFile is the PEM certificate chain; KeyFile its private key.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile enables client-certificate verification (mTLS) against
	// these CAs.
	ClientCAFile string `yaml:"client_ca_file"`
	// ClientAuth is "require" (default when ClientCAFile is set: a client
	// without a valid certificate is refused at the handshake) or
	// "request" (a certificate is verified if sent; routes may require it).
	ClientAuth string `yaml:"client_auth"`
	// ServerName, when set, is the host name the certificate must cover;
	// tokengate check reports a mismatch.
	ServerName string `yaml:"server_name"`

	// ClientCAs are ClientCAFile's certificates as this configuration read
	// them (filled at load when a route requires a client certificate):
	// routes accept only chains that end at one of them, so a CA removed on
	// reload stops connections that were opened while it was trusted.
	ClientCAs []*x509.Certificate `yaml:"-"`
}

// Client authentication modes of TLS.ClientAuth.
const (
	ClientAuthRequest = "request"
	ClientAuthRequire = "require"
)

// Issuer is one identity provider whose tokens tokengate accepts: either a
// JWT issuer (keys from OIDC discovery or jwks_url) or, with Introspection
// set, an RFC 7662 introspection endpoint for opaque tokens.
type Issuer struct {
	// Name is how routes refer to this issuer. Required, unique.
	Name string `yaml:"name"`
	// Issuer is the exact "iss" value of the tokens. For a JWT issuer
	// without JWKSURL, OIDC discovery runs against it. For an introspection
	// issuer it is optional; when set, the response's "iss" must equal it.
	Issuer string `yaml:"issuer"`
	// JWKSURL skips discovery and fetches keys from this URL.
	JWKSURL string `yaml:"jwks_url"`
	// Audiences accepted in "aud"; a token (or an introspection answer)
	// must name at least one. Required unless InsecureSkipAudienceCheck
	// is set, for JWT and introspection issuers alike.
	Audiences []string `yaml:"audiences"`
	// InsecureSkipAudienceCheck accepts tokens for any audience. It MUST NOT
	// be used when the issuer also issues tokens for other services.
	InsecureSkipAudienceCheck bool `yaml:"insecure_skip_audience_check"`
	// Algorithms allowed for signatures. Default: DefaultAlgorithms.
	Algorithms []string `yaml:"algorithms"`
	// ClockSkew tolerated on exp, nbf and iat. Default 30s.
	ClockSkew *Duration `yaml:"clock_skew"`
	// RequiredType, when set, must equal the JWT header "typ"
	// (compared case-insensitively, "application/" prefix optional),
	// e.g. "at+jwt" for RFC 9068 access tokens.
	RequiredType string `yaml:"required_type"`
	// Timeout bounds discovery and JWKS requests. Default 5s.
	Timeout Duration `yaml:"timeout"`
	// JWKSRefreshCooldown is the refill period of the token bucket
	// (burst 3) that limits JWKS fetches caused by an unknown "kid": a new
	// key is found at once; once the bucket is empty, waiting tokens share
	// at most one fetch per second. Default 30s.
	JWKSRefreshCooldown Duration `yaml:"jwks_refresh_cooldown"`
	// JWKSRefreshInterval is the age after which keys are refetched in the
	// background, so that keys an issuer pre-publishes for rotation are
	// seen before they are needed and a withdrawn key (with every cached
	// token it verified) stops being accepted within it. Default 1m.
	JWKSRefreshInterval Duration `yaml:"jwks_refresh_interval"`
	// Introspection makes this an RFC 7662 issuer for opaque tokens.
	Introspection *Introspection `yaml:"introspection"`
}

// IsIntrospection reports whether the issuer verifies by RFC 7662.
func (i *Issuer) IsIntrospection() bool { return i.Introspection != nil }

// Introspection configures an RFC 7662 token introspection endpoint.
type Introspection struct {
	// URL of the introspection endpoint. Required.
	URL string `yaml:"url"`
	// ClientID tokengate authenticates with. Required.
	ClientID string `yaml:"client_id"`
	// ClientSecret tokengate authenticates with; prefer ${ENV} or
	// ClientSecretFile.
	ClientSecret string `yaml:"client_secret"`
	// ClientSecretFile is read at load into ClientSecret (trailing newline
	// trimmed).
	ClientSecretFile string `yaml:"client_secret_file"`
	// Auth is how tokengate authenticates to the endpoint: "basic"
	// (default, client_secret_basic), "post" (client_secret_post) or
	// "none" (no credentials: ORY Hydra's admin introspection; keep such
	// an endpoint on a private network).
	Auth string `yaml:"auth"`
	// AuthMethod is the older spelling of Auth: "client_secret_basic" or
	// "client_secret_post". Set at most one of the two.
	AuthMethod string `yaml:"auth_method"`
	// Timeout bounds one introspection call. Default 5s.
	Timeout Duration `yaml:"timeout"`
	// MaxConcurrent caps introspection calls in flight; a cache miss past
	// it is answered 503 with Retry-After instead of reaching the
	// identity provider. Default 16.
	MaxConcurrent int `yaml:"max_concurrent"`
	// RatePerSecond and Burst are a token bucket on introspection calls
	// (cache misses only). Default 50/s, burst 100.
	RatePerSecond float64 `yaml:"rate_per_second"`
	Burst         int     `yaml:"burst"`
}

// Cache configures the verification cache shared by all issuers.
type Cache struct {
	// MaxEntries is the number of verified tokens kept. Default 100000.
	MaxEntries int `yaml:"max_entries"`
	// MaxTTL caps how long a verification is reused; an entry never
	// outlives its token's exp either. Default 5m.
	MaxTTL Duration `yaml:"max_ttl"`
	// NegativeTTL is how long a token an introspection endpoint called
	// inactive is remembered as such. Default 10s; "0s" disables it.
	NegativeTTL *Duration `yaml:"negative_ttl"`
	// NegativeMaxEntries bounds that separate, smaller cache.
	// Default MaxEntries/10.
	NegativeMaxEntries int `yaml:"negative_max_entries"`
}

// Route is one path (or prefix) tokengate forwards, and what it requires.
// Routes are matched in order; the first match wins.
type Route struct {
	// Name appears in logs and metrics. Default: the path or prefix.
	Name string `yaml:"name"`
	// Path matches exactly one cleaned path. One of Path and PathPrefix.
	Path string `yaml:"path"`
	// PathPrefix matches the path and everything below it, on segment
	// boundaries ("/hooks" matches "/hooks/a", not "/hooksx").
	PathPrefix string `yaml:"path_prefix"`
	// Methods allowed; empty means any.
	Methods []string `yaml:"methods"`
	// Host, when set, must equal the request's host (port ignored).
	Host string `yaml:"host"`
	// Public routes need no token. Identity headers are still stripped.
	Public bool `yaml:"public"`
	// Require is the policy a verified token must meet.
	Require Require `yaml:"require"`
	// KeepAuthorization overrides Headers.KeepAuthorization for this route.
	KeepAuthorization *bool `yaml:"keep_authorization"`
	// WebSocket lets WebSocket upgrades through this route (after the
	// token is verified like any request's); the tunnel is closed when the
	// token expires. Every other route refuses any Upgrade, and h2c is
	// refused everywhere.
	WebSocket bool `yaml:"websocket"`
	// Auth is how the route authenticates a request: bearer (default),
	// signature (default when Signature is set), any or all.
	Auth string `yaml:"auth"`
	// Signature verifies signed webhooks (GitHub, Stripe, Shopify,
	// Standard Webhooks) on this route.
	Signature *Signature `yaml:"signature"`
	// Delivery queued: stored, then delivered until taken (delivery.go).
	Delivery *Delivery `yaml:"delivery"`
	// RateLimit bounds the requests one sender gets through the route
	// (ratelimit.go). nil: no limit.
	RateLimit *RouteRateLimit `yaml:"rate_limit"`
}

// Require is a route's token policy.
type Require struct {
	// Issuers whose tokens are accepted; empty means any configured issuer.
	Issuers []string `yaml:"issuers"`
	// Scopes that must all be granted.
	Scopes []string `yaml:"scopes"`
	// AnyScopes of which at least one must be granted.
	AnyScopes []string `yaml:"any_scopes"`
	// Claims that must equal the given value (for an array claim: contain it).
	Claims map[string]string `yaml:"claims"`
	// ClientCert, when set, requires a verified TLS client certificate
	// (tls.client_ca_file) in addition to the token.
	ClientCert *ClientCert `yaml:"client_cert"`
}

// Headers configures what tokengate tells the receiver about the caller.
type Headers struct {
	// IdentityPrefix is the header namespace tokengate owns: every header
	// with this prefix sent by a client is removed. Default "X-Auth-".
	IdentityPrefix string `yaml:"identity_prefix"`
	// Identity lists the identity headers set: subject, client_id, scope,
	// issuer. Default all four, named Prefix+"Subject", "Client-Id",
	// "Scope", "Issuer".
	Identity []string `yaml:"identity"`
	// Claims maps a claim name to a header suffix, e.g. {tenant: Tenant}
	// sets X-Auth-Tenant.
	Claims map[string]string `yaml:"claims"`
	// KeepAuthorization forwards the Authorization header. Default false.
	KeepAuthorization bool `yaml:"keep_authorization"`
	// Strip names more client headers never to forward (compared
	// case-insensitively, "_" counting as "-"), in addition to the
	// built-in list of method-override, URL-rewrite and client-address
	// headers.
	Strip []string `yaml:"strip"`
}

// Identity header names understood in Headers.Identity.
const (
	IdentitySubject  = "subject"
	IdentityClientID = "client_id"
	IdentityScope    = "scope"
	IdentityIssuer   = "issuer"
)
