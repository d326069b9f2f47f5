package proxy

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/verifier"
)

// methodOverrideHeaders are honoured by some legacy frameworks as "the real
// method"; routes match the request's method, so these never pass.
var methodOverrideHeaders = []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}

// headerPolicy strips what a client must not say about itself and adds
// what tokengate verified.
type headerPolicy struct {
	prefix   string // canonical, e.g. "X-Auth-"
	subject  string // header names; "" when not sent
	clientID string
	scope    string
	issuer   string
	claims   map[string]string // claim → header
}

func newHeaderPolicy(h config.Headers) headerPolicy {
	p := headerPolicy{prefix: http.CanonicalHeaderKey(h.IdentityPrefix), claims: map[string]string{}}
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
func (p *headerPolicy) apply(hd http.Header, pr *verifier.Principal, keepAuth bool) {
	for k := range hd {
		if p.owned(k) {
			delete(hd, k)
		}
	}
	for _, k := range methodOverrideHeaders {
		hd.Del(k)
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
		set(hd, p.scope, strings.Join(pr.Scopes, " "))
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
