package proxy

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path"
	"slices"
	"strings"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/verifier"
)

// route is a compiled config.Route: everything the hot path needs, decided
// once at load.
type route struct {
	name      string
	exact     string // match this cleaned path exactly, or
	prefix    string // this path and everything below it ("/" = all)
	methods   []string
	host      string
	public    bool
	issuers   []string // nil: any
	scopes    []string
	anyScopes []string
	claims    map[string]string
	keepAuth  bool
	websocket bool
	scopeHint string // the scope parameter of a 403 challenge
	cert      *config.ClientCert
	// anchors are the SHA-256 of the public keys a verified client chain
	// must end at, when the route's cert requirement is Bound.
	anchors [][sha256.Size]byte
	// auth is the route's mode (config.Auth…); sig verifies signed
	// bodies of at most sigMaxBody bytes.
	auth       string
	sig        SignatureVerifier
	sigMaxBody int64
	scheme     string     // the signature scheme, named when no credential came
	trusted    [][32]byte // SPKI hashes of tls.client_ca_file's CAs, for client_cert routes
	// limit is the route's per-sender rate limit, nil for none.
	limit *routeLimit
	// index is the lookup table of the routes compiled with this one
	// (compileRoutes sets it on every route of the list).
	index *routeIndex
}

// credentials says which credentials a request on the route is judged
// by: its bearer token, its signature, or both. With auth: any, the one
// it presents: the signature when the scheme's header is there.
func (r *route) credentials(h http.Header) (bearer, signed bool) {
	switch r.auth {
	case config.AuthSignature:
		return false, true
	case config.AuthAll:
		return true, true
	case config.AuthAny:
		s := r.sig.Signed(h)
		return !s, s
	}
	return true, false
}

func compileRoutes(cfg *config.Config) []*route {
	out := make([]*route, 0, len(cfg.Routes))
	for _, r := range cfg.Routes {
		keep := cfg.Headers.KeepAuthorization
		if r.KeepAuthorization != nil {
			keep = *r.KeepAuthorization
		}
		cr := &route{
			name: r.Name, exact: r.Path, methods: r.Methods, host: strings.ToLower(r.Host),
			public: r.Public, issuers: r.Require.Issuers, scopes: r.Require.Scopes,
			anyScopes: r.Require.AnyScopes, claims: r.Require.Claims, keepAuth: keep,
			cert: r.Require.ClientCert, websocket: r.WebSocket, auth: r.AuthMode(),
		}
		if r.Signature != nil {
			cr.sigMaxBody = int64(r.Signature.MaxBodySize)
			cr.scheme = r.Signature.Scheme
		}
		if cc := r.Require.ClientCert; cc != nil {
			for _, a := range cc.Anchors {
				cr.anchors = append(cr.anchors, sha256.Sum256(a.RawSubjectPublicKeyInfo))
			}
			if cfg.TLS != nil {
				for _, ca := range cfg.TLS.ClientCAs {
					cr.trusted = append(cr.trusted, sha256.Sum256(ca.RawSubjectPublicKeyInfo))
				}
			}
		}
		if r.PathPrefix != "" {
			cr.prefix = r.PathPrefix
			if cr.prefix != "/" {
				cr.prefix = strings.TrimSuffix(cr.prefix, "/")
			}
		}
		hint := slices.Clone(r.Require.Scopes)
		if len(hint) == 0 {
			hint = r.Require.AnyScopes
		}
		cr.scopeHint = strings.Join(hint, " ")
		out = append(out, cr)
	}
	idx := newRouteIndex(out)
	for _, r := range out {
		r.index = idx
	}
	return out
}

// match returns the first route, in configuration order, for method, host
// and the cleaned path. It looks the candidates up by host and by the
// path's own prefixes (routeIndex) instead of trying every route.
func match(routes []*route, method, host, cleaned string) *route {
	r, _ := matchCounting(routes, method, host, cleaned)
	return r
}

// matchCounting is match that also says how many routes it tried.
func matchCounting(routes []*route, method, host, cleaned string) (*route, int) {
	if len(routes) > 0 && routes[0].index.of(routes) {
		return routes[0].index.match(method, host, cleaned)
	}
	return matchLinear(routes, method, hostOnly(host), cleaned)
}

// matchLinear tries every route in order: the definition of which route a
// request takes, which routeIndex must reproduce.
func matchLinear(routes []*route, method, host, cleaned string) (*route, int) {
	for i, r := range routes {
		if r.matches(method, host, cleaned) {
			return r, i + 1
		}
	}
	return nil, len(routes)
}

// matches reports whether a request with method, host (port removed) and
// the cleaned path falls under the route.
func (r *route) matches(method, host, cleaned string) bool {
	if r.host != "" && !strings.EqualFold(r.host, host) {
		return false
	}
	if r.exact != "" && cleaned != r.exact {
		return false
	}
	if r.prefix != "" && r.prefix != "/" && cleaned != r.prefix && !strings.HasPrefix(cleaned, r.prefix+"/") {
		return false
	}
	return len(r.methods) == 0 || slices.Contains(r.methods, method)
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// cleanPath resolves "." and ".." and repeated slashes in an already
// percent-decoded path, keeping a trailing slash. The result is both what
// routes match and what is forwarded.
func cleanPath(p string) string {
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	c := path.Clean(p)
	if c != "/" && strings.HasSuffix(p, "/") {
		c += "/"
	}
	return c
}

// allow applies the route's policy to a verified principal. The result of
// a verification is cached; this decision never is.
func (r *route) allow(p *verifier.Principal) error {
	if r.issuers != nil && !slices.Contains(r.issuers, p.Source) {
		return errWrongIssuer
	}
	for _, s := range r.scopes {
		if !p.HasScope(s) {
			return fmt.Errorf("%w: scope %q not granted", errInsufficientScope, s)
		}
	}
	if len(r.anyScopes) > 0 && !slices.ContainsFunc(r.anyScopes, p.HasScope) {
		return fmt.Errorf("%w: none of the scopes %q granted", errInsufficientScope, r.anyScopes)
	}
	for k, want := range r.claims {
		if !claimEquals(p.Claims[k], want) {
			return fmt.Errorf("%w: claim %q does not match", errInsufficientScope, k)
		}
	}
	return nil
}

// allowClientCert applies the route's client-certificate requirement: a
// certificate verified against tls.client_ca_file, optionally chaining to
// given trust anchors and with given subjects. An anchor is the root of a
// verified chain, compared by its public key: a name is no proof, since
// any trusted CA can issue an intermediate carrying another CA's name.
func (r *route) allowClientCert(cs *tls.ConnectionState) error {
	if r.cert == nil {
		return nil
	}
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return errClientCertRequired
	}
	leaf := cs.VerifiedChains[0][0]
	if len(r.cert.Subjects) > 0 && !slices.Contains(r.cert.Subjects, leaf.Subject.String()) {
		return fmt.Errorf("%w: subject not accepted", errClientCertRequired)
	}
	// A chain counts only if it ends at a CA this configuration trusts
	// (a connection opened before a reload removed its CA has a chain
	// verified by the old pool) and, for a bound route, at one of its
	// anchors. Nothing resolved (a config not loaded) fails closed.
	for _, chain := range cs.VerifiedChains {
		if len(chain) == 0 {
			continue
		}
		root := sha256.Sum256(chain[len(chain)-1].RawSubjectPublicKeyInfo)
		if slices.Contains(r.trusted, root) && (!r.cert.Bound() || slices.Contains(r.anchors, root)) {
			return nil
		}
	}
	return fmt.Errorf("%w: issuer not accepted", errClientCertRequired)
}

// claimEquals compares a claim with a configured string: strings and
// numbers by their text, booleans as "true"/"false", lists by membership.
func claimEquals(v any, want string) bool {
	switch x := v.(type) {
	case string:
		return x == want
	case json.Number:
		return x.String() == want
	case float64:
		return fmt.Sprint(x) == want
	case bool:
		return (x && want == "true") || (!x && want == "false")
	case []any:
		for _, e := range x {
			if claimEquals(e, want) {
				return true
			}
		}
	}
	return false
}

// MatchRoute returns the index in cfg.Routes of the route a request with
// method, host and (percent-decoded) path would take, or -1: the same
// matching as the handler's, for tools that explain a decision.
func MatchRoute(cfg *config.Config, method, host, urlPath string) int {
	routes := compileRoutes(cfg)
	r := match(routes, method, host, cleanPath(urlPath))
	return slices.Index(routes, r)
}

// ClaimMatches reports whether a claim value satisfies a route's
// require.claims entry, exactly as the handler decides it.
func ClaimMatches(v any, want string) bool { return claimEquals(v, want) }

// ClaimNames are the claims the handler reads from a principal: those of
// route claim policies and of claim headers, sorted, never nil. Verifiers
// keep only these (verifier JWTOptions/IntrospectionOptions.ClaimNames),
// so a cached token holds no other claim.
func ClaimNames(cfg *config.Config) []string {
	names := []string{}
	for k := range cfg.Headers.Claims {
		names = append(names, k)
	}
	for _, r := range cfg.Routes {
		for k := range r.Require.Claims {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}
