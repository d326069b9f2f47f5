package diagnose

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/tokengate/tokengate/config"
)

// printRoutes prints one line per route: its path, methods and what it
// requires.
func printRoutes(cfg *config.Config, out io.Writer) {
	fmt.Fprintln(out, "routes")
	for _, r := range cfg.Routes {
		p := r.Path
		if r.PathPrefix != "" {
			p = strings.TrimSuffix(r.PathPrefix, "/") + "/**"
		}
		methods := "ANY"
		if len(r.Methods) > 0 {
			methods = strings.Join(r.Methods, ",")
		}
		req := "public"
		if !r.Public {
			req = describeAuth(r)
		}
		fmt.Fprintf(out, "  %-30s %-10s %s\n", p, methods, req)
	}
}

// describeAuth summarizes what a route checks: its token policy, its
// signature policy, or both.
func describeAuth(r config.Route) string {
	sig := ""
	if s := r.Signature; s != nil {
		sig = fmt.Sprintf("signature=%s tolerance=%s replay=%t", s.Scheme, s.Tolerance.D(), s.ReplayOn())
	}
	switch r.AuthMode() {
	case config.AuthSignature:
		return sig
	case config.AuthAny:
		return describeRequire(r.Require) + " OR " + sig
	case config.AuthAll:
		return describeRequire(r.Require) + " AND " + sig
	}
	return describeRequire(r.Require)
}

func describeRequire(r config.Require) string {
	var parts []string
	if len(r.Issuers) > 0 {
		parts = append(parts, "issuers="+strings.Join(r.Issuers, ","))
	} else {
		parts = append(parts, "issuers=any")
	}
	if len(r.Scopes) > 0 {
		parts = append(parts, "scopes="+strings.Join(r.Scopes, "+"))
	}
	if len(r.AnyScopes) > 0 {
		parts = append(parts, "any_scopes="+strings.Join(r.AnyScopes, "|"))
	}
	for k, v := range r.Claims {
		parts = append(parts, fmt.Sprintf("%s=%s", k, v))
	}
	if cc := r.ClientCert; cc != nil {
		cert := "client_cert"
		if cc.CAFile != "" {
			cert += " ca_file=" + cc.CAFile
		}
		if len(cc.Issuers) > 0 {
			cert += " issuers=" + strings.Join(cc.Issuers, ";")
		}
		if len(cc.Subjects) > 0 {
			cert += " subjects=" + strings.Join(cc.Subjects, ";")
		}
		parts = append(parts, cert)
	}
	return strings.Join(parts, " ")
}

// unboundSubjects warns of routes that accept a client certificate by its
// subject alone while tls.client_ca_file trusts several CAs: any of them
// can issue a certificate with that subject.
func unboundSubjects(cfg *config.Config) []string {
	if cfg.TLS == nil || cfg.TLS.ClientCAFile == "" {
		return nil
	}
	pemBytes, err := os.ReadFile(cfg.TLS.ClientCAFile)
	if err != nil {
		return nil // reported as a problem elsewhere
	}
	cas := 0
	for rest := pemBytes; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil && c.IsCA {
			cas++
		}
	}
	if cas < 2 {
		return nil
	}
	var warnings []string
	for i, r := range cfg.Routes {
		if cc := r.Require.ClientCert; cc != nil && !cc.Bound() {
			warnings = append(warnings, fmt.Sprintf("routes[%d].require.client_cert: accepts a certificate from any of the %d CAs in tls.client_ca_file (subjects alone do not say which CA issued them): bind the route with ca_file or issuers", i, cas))
		}
	}
	return warnings
}
