package proxy

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/queue"
	"github.com/tokengate/tokengate/verifier"
)

// alwaysStripped are headers legacy frameworks read as the real method, the
// real URL or an authenticated user, and the queue's delivery headers.
// Routes match the request's own method and cleaned path, only tokengate
// says who the caller is, and only its queue says which delivery a request
// is (a receiver de-duplicates on it, on direct routes too), so a client
// never gets to send these.
var alwaysStripped = []string{
	"X-Http-Method-Override", "X-Http-Method", "X-Method-Override", "X-Original-Method",
	"X-Original-Url", "X-Rewrite-Url", "Remote-User", "X-Remote-User",
	queue.HeaderDeliveryID, queue.HeaderAttempt,
}

// proxyStripped are client-address and forwarding headers that only a proxy
// in front of tokengate may set: kept from trusted_proxies, removed from
// anyone else (like X-Forwarded-For).
var proxyStripped = []string{
	"X-Real-Ip", "True-Client-Ip", "X-Client-Ip", "Cf-Connecting-Ip",
	"Client-Ip", "X-Cluster-Client-Ip", "Forwarded-For", "X-Original-Forwarded-For",
	"X-Proxyuser-Ip", "X-Envoy-External-Address", "Fastly-Client-Ip",
	"X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Ssl", "X-Forwarded-Scheme", "X-Forwarded-Server",
	"X-Forwarded-Uri", "X-Forwarded-By",
}

// gateForwarding are the forwarding headers tokengate writes itself
// (Forwarding.apply; ReverseProxy drops a client's Forwarded). Listed here
// so that their underscore spellings, which CGI-style receivers read as
// the same variables, are always removed.
var gateForwarding = []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded"}

// normalHeader is a header name as CGI-style stacks see it: "_" for "-",
// case folded to the canonical form.
func normalHeader(k string) string {
	if strings.IndexByte(k, '_') >= 0 {
		k = strings.ReplaceAll(k, "_", "-")
	}
	return http.CanonicalHeaderKey(k)
}

// headerPolicy strips what a client must not say about itself and adds
// what tokengate verified.
type headerPolicy struct {
	prefix   string // canonical, e.g. "X-Auth-"
	subject  string // header names; "" when not sent
	clientID string
	scope    string
	issuer   string
	claims   map[string]string // claim → header
	// strip maps a normalized header name to true (always removed) or
	// false (removed unless the peer is a trusted proxy).
	strip map[string]bool
}

func newHeaderPolicy(h config.Headers) headerPolicy {
	p := headerPolicy{prefix: http.CanonicalHeaderKey(h.IdentityPrefix), claims: map[string]string{}, strip: map[string]bool{}}
	for _, k := range append(slices.Clone(proxyStripped), gateForwarding...) {
		p.strip[k] = false
	}
	for _, k := range append(slices.Clone(alwaysStripped), h.Strip...) {
		p.strip[normalHeader(k)] = true
	}
	for _, id := range h.Identity {
		switch id {
		case config.IdentitySubject:
			p.subject = p.prefix + "Subject"
		case config.IdentityClientID:
			p.clientID = p.prefix + "Client-Id"
		case config.IdentityScope:
			p.scope = p.prefix + "Scope"
		case config.IdentityIssuer:
			p.issuer = p.prefix + "Issuer"
		}
	}
	for claim, suffix := range h.Claims {
		p.claims[claim] = http.CanonicalHeaderKey(p.prefix + suffix)
	}
	return p
}

// apply rewrites outbound headers. Hop-by-hop headers, including any a
// client named in Connection, were already removed by ReverseProxy before
// Rewrite runs, so nothing a client sends can remove what is set here.
func (p *headerPolicy) apply(hd http.Header, pr *verifier.Principal, keepAuth, trustedPeer bool) {
	for k := range hd {
		if p.owned(k) {
			delete(hd, k)
			continue
		}
		always, listed := p.strip[k]
		if !listed && strings.IndexByte(k, '_') >= 0 {
			// No proxy sets the underscore spelling: always a client's.
			_, listed = p.strip[normalHeader(k)]
			always = true
		}
		if listed && (always || !trustedPeer) {
			delete(hd, k)
		}
	}
	if !keepAuth {
		hd.Del("Authorization")
	}
	if pr == nil {
		return
	}
	set(hd, p.subject, pr.Subject)
	set(hd, p.clientID, pr.ClientID)
	if p.scope != "" && len(pr.Scopes) > 0 {
		set(hd, p.scope, scopeHeader(pr.Scopes))
	}
	set(hd, p.issuer, pr.Issuer)
	for claim, name := range p.claims {
		switch v := pr.Claims[claim].(type) {
		case string:
			set(hd, name, v)
		case bool, fmt.Stringer, float64:
			set(hd, name, fmt.Sprint(v))
		}
	}
}

// scopeHeader joins the granted scopes that are valid RFC 6749 §3.3
// scope-tokens: a scope holding a space (or any character outside
// %x21 / %x23-5B / %x5D-7E) would read as two scopes, so it is left out.
func scopeHeader(scopes []string) string {
	valid := true
	for _, s := range scopes {
		valid = valid && isScopeToken(s)
	}
	if valid {
		return strings.Join(scopes, " ")
	}
	out := make([]string, 0, len(scopes))
	for _, s := range scopes {
		if isScopeToken(s) {
			out = append(out, s)
		}
	}
	return strings.Join(out, " ")
}

func isScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c == 0x22 || c == 0x5C || c > 0x7E {
			return false
		}
	}
	return true
}

// clientCert passes the verified client certificate's subject, if any.
func (p *headerPolicy) clientCert(hd http.Header, cs *tls.ConnectionState) {
	if cs != nil && len(cs.VerifiedChains) > 0 && len(cs.VerifiedChains[0]) > 0 {
		set(hd, p.prefix+"Client-Cert-Subject", cs.VerifiedChains[0][0].Subject.String())
	}
}

// owned reports whether a client-sent header falls in the identity
// namespace. Underscores count as dashes: CGI-style receivers (PHP, many
// legacy stacks) read X_Auth_Subject and X-Auth-Subject as one variable.
func (p *headerPolicy) owned(k string) bool {
	if len(k) < len(p.prefix) {
		return false
	}
	for i := 0; i < len(p.prefix); i++ {
		a, b := k[i], p.prefix[i]
		if a == '_' {
			a = '-'
		}
		if a != b && a|0x20 != b|0x20 {
			return false
		}
	}
	return true
}

// set adds a header only when the value is non-empty and a valid field
// value: a claim holding CR or LF never becomes header injection.
func set(hd http.Header, name, value string) {
	if name == "" || value == "" || !httpguts.ValidHeaderFieldValue(value) {
		return
	}
	hd[name] = []string{value}
}
