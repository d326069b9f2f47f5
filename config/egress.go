package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Egress defaults.
const (
	DefaultEgressListen          = "127.0.0.1:8081"
	DefaultEgressAuth            = EgressAuthBasic
	DefaultEgressWaitTimeout     = 10 * time.Second
	DefaultEgressRetryBodyLimit  = 1 << 20 // 1 MiB
	DefaultEgressTokenTimeout    = 10 * time.Second
	DefaultEgressDefaultLifetime = 5 * time.Minute
)

// Token request shapes of EgressToken.Auth.
const (
	EgressAuthBasic     = "basic"
	EgressAuthForm      = "form"
	EgressAuthJSON      = "json"
	EgressAuthMultipart = "multipart"
)

// reservedTokenParams are set by tokengate itself, never by params.
var reservedTokenParams = map[string]bool{"grant_type": true, "client_id": true, "client_secret": true, "scope": true}

// Egress is one outbound target: tokengate listens for the app's plain
// requests, adds a bearer token it obtained with the client credentials
// grant, and forwards them to the upstream.
type Egress struct {
	// Name appears in logs, metrics and error bodies. Required, unique.
	Name string `yaml:"name"`
	// Listen is where the app sends its requests. Default
	// "127.0.0.1:8081". The listener spends credentials, so it must be a
	// loopback address unless TLS requires client certificates.
	Listen string `yaml:"listen"`
	// TLS serves the listener over HTTPS; with client_ca_file (client_auth
	// "require") only callers with a verified certificate get in.
	TLS *TLS `yaml:"tls"`
	// Upstream is the vendor's base URL (a string, or a mapping like the
	// receiving side's upstream: timeouts, ca_file, max_body_size).
	// https is required unless InsecureHTTP is set.
	Upstream Upstream `yaml:"upstream"`
	// InsecureHTTP allows http:// for the upstream and the token URL: the
	// client secret and the tokens then cross the network in clear.
	// For local tests only.
	InsecureHTTP bool `yaml:"insecure_http"`
	// Token is how the access token is obtained.
	Token EgressToken `yaml:"token"`
	// WaitTimeout bounds how long a request waits for a token when none is
	// valid; then it gets 503 with Retry-After. Default 10s.
	WaitTimeout Duration `yaml:"wait_timeout"`
	// RetryBodyLimit: request bodies up to this size are kept so that a
	// request the upstream refuses with 401 is sent once more with a new
	// token; larger bodies stream and are not retried. Default 1MiB.
	RetryBodyLimit ByteSize `yaml:"retry_body_limit"`
	// ForwardedHeaders adds X-Forwarded-For/-Host/-Proto. Default false.
	ForwardedHeaders bool `yaml:"forwarded_headers"`
	// ReadyRequiresToken makes /readyz fail while this egress holds no
	// valid token. Default true.
	ReadyRequiresToken *bool `yaml:"ready_requires_token"`
}

// EgressToken describes an egress entry's token requests.
type EgressToken struct {
	// URL is the vendor's Token URL. Required.
	URL string `yaml:"url"`
	// ClientID is the client id the vendor gave. Required.
	ClientID string `yaml:"client_id"`
	// ClientSecret must come from the environment ("${VAR}"); a plain
	// secret in the file is refused. Or use ClientSecretFile.
	ClientSecret string `yaml:"client_secret"`
	// ClientSecretFile is read at load (trailing newline trimmed).
	ClientSecretFile string `yaml:"client_secret_file"`
	// Auth is the request shape: "basic" (default; Deployteq, Akamai),
	// "form" (credentials in the body), "json" (MyParcel.com) or
	// "multipart" (form-data fields with Basic credentials, Akamai's
	// curl -F).
	Auth string `yaml:"auth"`
	// Scopes requested, sent space-separated ("*" is passed as is).
	Scopes []string `yaml:"scopes"`
	// Params are extra token request parameters, e.g. audience or
	// resource.
	Params map[string]string `yaml:"params"`
	// RefreshBefore renews the token this long before it expires (never
	// before half its lifetime). Default: at 80 % of its lifetime.
	RefreshBefore Duration `yaml:"refresh_before"`
	// DefaultLifetime is assumed when an answer has no expires_in and the
	// token is not a JWT with an exp. Default 5m.
	DefaultLifetime Duration `yaml:"default_lifetime"`
	// Timeout bounds one token request. Default 10s.
	Timeout Duration `yaml:"timeout"`
	// CAFile verifies the token endpoint's certificate instead of the
	// system roots.
	CAFile string `yaml:"ca_file"`
	// Grant is "client_credentials" (default) or "authorization_code":
	// the entry acts for a user who consented once through `tokengate
	// authorize NAME`, and its access tokens come from the refresh token
	// in RefreshTokenFile.
	Grant string `yaml:"grant"`
	// AuthorizeURL is where the user consents (authorization_code).
	AuthorizeURL string `yaml:"authorize_url"`
	// RedirectURI is the redirect URL registered with the vendor
	// (authorization_code); a loopback http URL lets `tokengate authorize`
	// receive the code itself.
	RedirectURI string `yaml:"redirect_uri"`
	// RefreshTokenFile holds the refresh token (authorization_code): on a
	// writable volume when the vendor rotates refresh tokens. Optional
	// with Shared (the refresh token then lives in Redis; the file, when
	// set, keeps a copy and seeds an empty Redis).
	RefreshTokenFile string `yaml:"refresh_token_file"`
	// Shared: "redis" makes every replica use one access token (and, for
	// authorization_code, one refresh token) kept in the top-level redis
	// block's server, encrypted with redis.token_key: one token request
	// per token lifetime for the whole fleet, and refresh-token rotation
	// under a Redis lock. "" (default): each replica its own token.
	Shared string `yaml:"shared"`
}

// SharedRedis is EgressToken.Shared for tokens shared through Redis.
const SharedRedis = "redis"

// SharedOn reports whether the entry shares its tokens through Redis.
func (t *EgressToken) SharedOn() bool { return t.Shared == SharedRedis }

// Egress grants (EgressToken.Grant).
const (
	GrantClientCredentials = "client_credentials"
	GrantAuthorizationCode = "authorization_code"
)

// AuthorizationCode reports whether the entry uses the authorization-code
// grant.
func (t *EgressToken) AuthorizationCode() bool { return t.Grant == GrantAuthorizationCode }

// Receiving reports whether the configuration has a receiving side (a
// gate in front of an upstream). A configuration with only egress
// entries runs the calling side alone.
func (c *Config) Receiving() bool {
	return len(c.Egress) == 0 || c.Upstream.URL != "" || len(c.Routes) > 0 || c.TokenEndpoint != nil || len(c.Issuers) > 0
}

// ReadyRequiresTokenOrDefault reports the effective ready_requires_token.
func (e *Egress) ReadyRequiresTokenOrDefault() bool {
	return e.ReadyRequiresToken == nil || *e.ReadyRequiresToken
}

func (c *Config) egressDefaults() {
	for i := range c.Egress {
		e := &c.Egress[i]
		setDefault(&e.Listen, DefaultEgressListen)
		setDefault(&e.WaitTimeout, Duration(DefaultEgressWaitTimeout))
		setDefault(&e.RetryBodyLimit, DefaultEgressRetryBodyLimit)
		e.Upstream.applyDefaults()
		e.TLS.applyDefaults()
		tk := &e.Token
		setDefault(&tk.Auth, DefaultEgressAuth)
		setDefault(&tk.Grant, GrantClientCredentials)
		setDefault(&tk.Timeout, Duration(DefaultEgressTokenTimeout))
		setDefault(&tk.DefaultLifetime, Duration(DefaultEgressDefaultLifetime))
	}
}

// ClientCertsRequired reports whether the entry's listener refuses callers
// without a verified client certificate.
func (e *Egress) ClientCertsRequired() bool {
	return e.TLS != nil && e.TLS.ClientCAFile != "" && e.TLS.ClientAuth == ClientAuthRequire
}

// isLoopback reports whether a listen address binds loopback only.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func (v *validator) egress() {
	names := map[string]bool{}
	listens := map[string]string{}
	if v.c.Receiving() {
		listens[v.c.Listen] = "listen"
	}
	listens[v.c.AdminListen] = "admin_listen"
	for i, e := range v.c.Egress {
		p := fmt.Sprintf("egress[%d]", i)
		v.name(p+".name", e.Name, "egress", names)
		if _, _, err := net.SplitHostPort(e.Listen); err != nil {
			v.add(p+".listen", "invalid address %q: %v", e.Listen, err)
		} else if other, dup := listens[e.Listen]; dup && !strings.HasSuffix(e.Listen, ":0") {
			v.add(p+".listen", "%s is also %s", e.Listen, other)
		} else if !isLoopback(e.Listen) && !e.ClientCertsRequired() {
			v.add(p+".listen", "%q is not a loopback address: an egress listener spends the client's credentials for whoever calls it, so it binds 127.0.0.1 unless tls.client_ca_file requires client certificates", e.Listen)
		}
		listens[e.Listen] = p
		v.listenerTLS(p+".tls", e.TLS)
		v.egressURL(p+".upstream.url", e.Upstream.URL, e.InsecureHTTP, "the vendor's API base URL")
		u := e.Upstream
		if u.CertFile != "" && u.KeyFile == "" || u.CertFile == "" && u.KeyFile != "" {
			v.add(p+".upstream.cert_file", "cert_file and key_file go together")
		}
		if u.InsecureSkipTLSVerify {
			v.add(p+".upstream.insecure_skip_tls_verify", "not available for an egress: it would hand the token to anyone on the path; use ca_file")
		}
		v.egressToken(p+".token", e)
	}
}

func (v *validator) egressURL(p, raw string, insecure bool, what string) {
	if raw == "" {
		v.add(p, "required: %s", what)
		return
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		v.add(p, "must be an absolute https URL, got %q", raw)
	case u.Scheme == "http" && !insecure:
		v.add(p, "%q is plain http: tokens and secrets would cross the network in clear (set insecure_http: true for a local test)", raw)
	case u.RawQuery != "" && strings.HasSuffix(p, "upstream.url") || u.Fragment != "" || u.User != nil:
		v.add(p, "must not carry a query, fragment or user info")
	}
}

func (v *validator) egressToken(p string, e Egress) {
	t := e.Token
	v.egressURL(p+".url", t.URL, e.InsecureHTTP, "the vendor's Token URL")
	if t.ClientID == "" {
		v.add(p+".client_id", "required")
	}
	switch {
	case t.ClientSecret == "":
		v.add(p+".client_secret", "required: client_secret: ${ENV_VAR} or client_secret_file")
	case t.ClientSecretFile == "" && !v.c.envPaths[p+".client_secret"]:
		v.add(p+".client_secret", "plain-text secrets are refused: write client_secret: ${ENV_VAR} or use client_secret_file")
	}
	switch t.Auth {
	case EgressAuthBasic, EgressAuthForm, EgressAuthJSON, EgressAuthMultipart:
	default:
		v.add(p+".auth", "must be basic, form, json or multipart, got %q", t.Auth)
	}
	for _, s := range t.Scopes {
		if !scopeRE.MatchString(s) {
			v.add(p+".scopes", "invalid scope %q", s)
		}
	}
	switch t.Grant {
	case GrantClientCredentials:
		if t.AuthorizeURL != "" || t.RedirectURI != "" || t.RefreshTokenFile != "" {
			v.add(p+".grant", "authorize_url, redirect_uri and refresh_token_file belong to grant: authorization_code")
		}
	case GrantAuthorizationCode:
		v.egressURL(p+".authorize_url", t.AuthorizeURL, e.InsecureHTTP, "where the user consents")
		if u, err := url.Parse(t.RedirectURI); t.RedirectURI == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" {
			v.add(p+".redirect_uri", "required: the redirect URL registered with the vendor (absolute http or https, no fragment)")
		}
		if t.RefreshTokenFile == "" && !t.SharedOn() {
			v.add(p+".refresh_token_file", "required with grant: authorization_code (unless shared: redis): where `tokengate authorize` stores the refresh token")
		}
		if t.Auth != EgressAuthBasic && t.Auth != EgressAuthForm {
			v.add(p+".auth", "grant: authorization_code takes basic or form client authentication, got %q", t.Auth)
		}
	default:
		v.add(p+".grant", "must be client_credentials or authorization_code, got %q", t.Grant)
	}
	v.egressShared(p+".shared", t.Shared)
	for k := range t.Params {
		if reservedTokenParams[k] || k == "" {
			v.add(p+".params."+k, "%q is set by tokengate (use scopes, client_id, client_secret)", k)
		}
	}
}
