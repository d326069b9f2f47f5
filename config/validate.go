package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
)

var (
	nameRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	tokenRE   = regexp.MustCompile(`^[!#$%&'*+\-.^_` + "`" + `|~0-9A-Za-z]+$`) // RFC 9110 token
	scopeRE   = regexp.MustCompile(`^[\x21\x23-\x5B\x5D-\x7E]+$`)              // RFC 6749 §3.3 scope-token
	symmetric = map[string]bool{"HS256": true, "HS384": true, "HS512": true}
)

// IssuerNames returns every name a route may require: the configured
// issuers and, when enabled, the embedded token endpoint.
func (c *Config) IssuerNames() []string {
	var names []string
	for _, is := range c.Issuers {
		names = append(names, is.Name)
	}
	if c.TokenEndpoint != nil {
		names = append(names, c.TokenEndpoint.Name)
	}
	return names
}

// Validate checks a defaulted configuration and returns every problem at
// once (errors.Join of *FieldError). It reads no files and opens no
// connections.
func (c *Config) Validate() error {
	v := &validator{c: c}
	v.top()
	if v.c.Receiving() {
		v.upstream()
		v.tls()
		v.issuers()
		v.cache()
		v.headers()
		v.tokenEndpoint()
		v.routes()
		v.signatures()
		v.delivery()
		v.rateLimits()
	}
	v.redis()
	v.egress()
	v.tracing()
	return errors.Join(v.errs...)
}

type validator struct {
	c    *Config
	errs []error
}

func (v *validator) add(path, format string, args ...any) {
	v.errs = append(v.errs, v.c.fieldErr(path, format, args...))
}

func (v *validator) top() {
	if _, _, err := net.SplitHostPort(v.c.Listen); err != nil {
		v.add("listen", "invalid address %q: %v", v.c.Listen, err)
	}
	if _, _, err := net.SplitHostPort(v.c.AdminListen); err != nil {
		v.add("admin_listen", "invalid address %q: %v", v.c.AdminListen, err)
	}
	if v.c.AdminListen == v.c.Listen && !strings.HasSuffix(v.c.Listen, ":0") {
		v.add("admin_listen", "must differ from listen: health and metrics never share the public port")
	}
	if strings.ContainsAny(v.c.Realm, "\"\\") {
		v.add("realm", "must not contain quotes or backslashes")
	}
}

func (v *validator) upstream() {
	u := v.c.Upstream
	if u.URL == "" {
		v.add("upstream.url", "required: the receiver's URL, e.g. http://127.0.0.1:9000")
	} else if pu, err := url.Parse(u.URL); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
		v.add("upstream.url", "must be an absolute http or https URL, got %q", u.URL)
	} else if pu.RawQuery != "" || pu.Fragment != "" {
		v.add("upstream.url", "must not carry a query or fragment")
	}
	if u.MaxIdleConns < 0 {
		v.add("upstream.max_idle_conns", "must not be negative")
	}
	if (u.CertFile == "") != (u.KeyFile == "") {
		v.add("upstream.cert_file", "cert_file and key_file go together")
	}
	if !strings.HasPrefix(u.URL, "https://") && (u.CAFile != "" || u.CertFile != "" || u.ServerName != "" || u.InsecureSkipTLSVerify) {
		v.add("upstream.url", "ca_file, cert_file, server_name and insecure_skip_tls_verify need an https:// upstream")
	}
	if u.InsecureSkipTLSVerify && u.CAFile != "" {
		v.add("upstream.insecure_skip_tls_verify", "cannot be combined with ca_file")
	}
}

func (v *validator) tls() {
	v.cidrs("trusted_proxies", v.c.TrustedProxies)
	v.listenerTLS("tls", v.c.TLS)
}

// cidrs checks a list of CIDRs or single addresses at path p.
func (v *validator) cidrs(p string, list []string) {
	for i, c := range list {
		if _, err := netip.ParsePrefix(c); err != nil {
			if _, err := netip.ParseAddr(c); err != nil {
				v.add(fmt.Sprintf("%s[%d]", p, i), "%q is neither a CIDR nor an IP address", c)
			}
		}
	}
}

// listenerTLS checks a listener's TLS block (public or egress).
func (v *validator) listenerTLS(p string, t *TLS) {
	if t == nil {
		return
	}
	if t.CertFile == "" || t.KeyFile == "" {
		v.add(p, "cert_file and key_file are both required")
	}
	switch t.ClientAuth {
	case "", ClientAuthRequest, ClientAuthRequire:
	default:
		v.add(p+".client_auth", "must be request or require, got %q", t.ClientAuth)
	}
	if t.ClientAuth != "" && t.ClientCAFile == "" {
		v.add(p+".client_ca_file", "required when client_auth is set")
	}
}

// name checks a required, unique name of kind (issuer, egress).
func (v *validator) name(p, name, kind string, seen map[string]bool) {
	switch {
	case name == "":
		v.add(p, "required")
	case !nameRE.MatchString(name):
		v.add(p, "%q: use letters, digits, '.', '_' and '-'", name)
	case seen[name]:
		v.add(p, "duplicate %s name %q", kind, name)
	}
	seen[name] = true
}

func (v *validator) issuers() {
	seen := map[string]bool{}
	introspectors := 0
	for i, is := range v.c.Issuers {
		p := fmt.Sprintf("issuers[%d]", i)
		v.name(p+".name", is.Name, "issuer", seen)
		if is.Issuer != "" {
			v.checkURL(p+".issuer", is.Issuer)
		}
		if is.IsIntrospection() {
			introspectors++
			if introspectors == 2 {
				v.add(p, "only one introspection issuer may be configured: an opaque token names no issuer, so tokengate would send every sender's token to every introspection endpoint")
			}
			v.introspection(p+".introspection", is)
			v.audiences(p, is)
			continue
		}
		if is.Issuer == "" {
			v.add(p+".issuer", "required for a JWT issuer: the exact \"iss\" of its tokens")
		}
		if is.JWKSURL != "" {
			v.checkURL(p+".jwks_url", is.JWKSURL)
		}
		v.audiences(p, is)
		for _, alg := range is.Algorithms {
			switch {
			case alg == "none" || strings.EqualFold(alg, "none"):
				v.add(p+".algorithms", "\"none\" is never accepted")
			case symmetric[alg]:
				v.add(p+".algorithms", "%s is a shared-secret algorithm and cannot be verified with JWKS public keys", alg)
			case !slices.Contains(DefaultAlgorithms, alg):
				v.add(p+".algorithms", "unknown algorithm %q (allowed: %s)", alg, strings.Join(DefaultAlgorithms, ", "))
			}
		}
	}
}

// audiences: every issuer names the audiences its tokens must carry, or
// opts out explicitly; an issuer that also serves other services' tokens
// would otherwise have them accepted here.
func (v *validator) audiences(p string, is Issuer) {
	if len(is.Audiences) == 0 && !is.InsecureSkipAudienceCheck {
		v.add(p+".audiences", "required: list the audiences tokens must name (or set insecure_skip_audience_check: true to accept any)")
	}
	if len(is.Audiences) > 0 && is.InsecureSkipAudienceCheck {
		v.add(p+".insecure_skip_audience_check", "cannot be combined with audiences")
	}
}

func (v *validator) introspection(p string, is Issuer) {
	in := is.Introspection
	if in.URL == "" {
		v.add(p+".url", "required")
	} else {
		v.checkURL(p+".url", in.URL)
	}
	older := map[string]string{AuthClientSecretBasic: IntrospectionAuthBasic, AuthClientSecretPost: IntrospectionAuthPost}
	if _, ok := older[in.AuthMethod]; !ok && in.AuthMethod != "" {
		v.add(p+".auth_method", "must be %s or %s, got %q", AuthClientSecretBasic, AuthClientSecretPost, in.AuthMethod)
	}
	switch {
	case older[in.AuthMethod] != "" && in.Auth != older[in.AuthMethod]:
		v.add(p+".auth", "set only one of auth and auth_method (its older spelling)")
	case in.Auth == IntrospectionAuthNone:
		if in.ClientID != "" || in.ClientSecret != "" {
			v.add(p+".auth", "none sends no client credentials: remove client_id and client_secret")
		}
	case in.Auth == IntrospectionAuthBasic || in.Auth == IntrospectionAuthPost:
		if in.ClientID == "" {
			v.add(p+".client_id", "required (or auth: none for an endpoint that takes no credentials)")
		}
		if in.ClientSecret == "" {
			v.add(p+".client_secret", "required (use ${ENV} or client_secret_file)")
		}
	default:
		v.add(p+".auth", "must be basic, post or none, got %q", in.Auth)
	}
	if is.JWKSURL != "" {
		v.add(strings.TrimSuffix(p, ".introspection")+".jwks_url", "not used by an introspection issuer")
	}
	if in.MaxConcurrent < 0 || in.RatePerSecond < 0 || in.Burst < 0 {
		v.add(p, "max_concurrent, rate_per_second and burst must not be negative")
	}
}

func (v *validator) checkURL(p, raw string) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		v.add(p, "must be an absolute https URL, got %q", raw)
	}
}

func (v *validator) cache() {
	c := v.c.Cache
	if c.MaxEntries < 0 {
		v.add("cache.max_entries", "must not be negative")
	}
	if c.NegativeMaxEntries < 0 {
		v.add("cache.negative_max_entries", "must not be negative")
	}
}

func (v *validator) headers() {
	h := v.c.Headers
	if !tokenRE.MatchString(h.IdentityPrefix) {
		v.add("headers.identity_prefix", "%q is not a valid header name prefix", h.IdentityPrefix)
	}
	for _, id := range h.Identity {
		switch id {
		case IdentitySubject, IdentityClientID, IdentityScope, IdentityIssuer:
		default:
			v.add("headers.identity", "unknown identity header %q (use subject, client_id, scope, issuer)", id)
		}
	}
	for i, name := range h.Strip {
		if !tokenRE.MatchString(name) {
			v.add(fmt.Sprintf("headers.strip[%d]", i), "%q is not a valid header name", name)
		}
	}
	for claim, suffix := range h.Claims {
		if claim == "" || !tokenRE.MatchString(suffix) {
			v.add("headers.claims."+claim, "header suffix %q is not a valid header name", suffix)
		}
	}
}

func (v *validator) routes() {
	if len(v.c.Routes) == 0 {
		v.add("routes", "at least one route is required: tokengate denies every path no route names")
	}
	names := v.c.IssuerNames()
	signed := map[string]int{} // route name → index of the signed route that has it
	for i, r := range v.c.Routes {
		p := fmt.Sprintf("routes[%d]", i)
		if r.Signature != nil {
			if j, dup := signed[r.Name]; dup {
				v.add(p+".name", "%q is also the name of signed routes[%d]: signed routes need names of their own, since replay ids are remembered per route name (set name:)", r.Name, j)
			} else {
				signed[r.Name] = i
			}
		}
		switch {
		case r.Path != "" && r.PathPrefix != "":
			v.add(p, "set only one of path and path_prefix")
		case r.Path == "" && r.PathPrefix == "":
			v.add(p, "one of path or path_prefix is required")
		}
		for key, val := range map[string]string{"path": r.Path, "path_prefix": r.PathPrefix} {
			if val == "" {
				continue
			}
			if !strings.HasPrefix(val, "/") {
				v.add(p+"."+key, "must start with /, got %q", val)
			} else if c := path.Clean(val); c != val && c+"/" != val {
				v.add(p+"."+key, "must be a clean path (%q, not %q)", c, val)
			}
		}
		for _, m := range r.Methods {
			if !tokenRE.MatchString(m) {
				v.add(p+".methods", "invalid method %q", m)
			}
		}
		if r.Host != "" && strings.ContainsAny(r.Host, "/ ") {
			v.add(p+".host", "invalid host %q", r.Host)
		}
		req := r.Require
		if r.Public {
			if len(req.Issuers)+len(req.Scopes)+len(req.AnyScopes)+len(req.Claims) > 0 || req.ClientCert != nil {
				v.add(p+".require", "a public route needs no token, so it cannot require anything")
			}
			continue
		}
		if len(names) == 0 && r.NeedsToken() {
			v.add(p, "needs a token but no issuer or token_endpoint is configured")
		}
		if !r.NeedsToken() && len(req.Issuers)+len(req.Scopes)+len(req.AnyScopes)+len(req.Claims) > 0 {
			v.add(p+".require", "auth: signature verifies no token, so issuers, scopes and claims cannot apply (use auth: all for both)")
		}
		for _, name := range req.Issuers {
			if !slices.Contains(names, name) {
				v.add(p+".require.issuers", "unknown issuer %q%s", name, didYouMean(name, names))
			}
		}
		for _, s := range append(slices.Clone(req.Scopes), req.AnyScopes...) {
			if !scopeRE.MatchString(s) {
				v.add(p+".require.scopes", "invalid scope %q", s)
			}
		}
		for k := range req.Claims {
			if k == "" {
				v.add(p+".require.claims", "empty claim name")
			}
		}
		if req.ClientCert != nil && (v.c.TLS == nil || v.c.TLS.ClientCAFile == "") {
			v.add(p+".require.client_cert", "needs tls.client_ca_file: client certificates are verified against it")
		}
	}
}
