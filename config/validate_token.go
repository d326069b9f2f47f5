package config

import (
	"fmt"
	"slices"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// tokenEndpoint checks the embedded Token URL and its clients.
func (v *validator) tokenEndpoint() {
	te := v.c.TokenEndpoint
	if te == nil {
		return
	}
	const p = "token_endpoint"
	if !nameRE.MatchString(te.Name) {
		v.add(p+".name", "%q: use letters, digits, '.', '_' and '-'", te.Name)
	}
	for _, is := range v.c.Issuers {
		if is.Name == te.Name {
			v.add(p+".name", "%q is also the name of a configured issuer", te.Name)
		}
		if is.Issuer != "" && is.Issuer == te.Issuer && !is.IsIntrospection() {
			v.add(p+".issuer", "%q is also the issuer of %s: tokens would be ambiguous", te.Issuer, is.Name)
		}
	}
	if te.Issuer == "" {
		v.add(p+".issuer", "required: the public base URL senders reach, e.g. https://hooks.example.com")
	} else {
		v.checkURL(p+".issuer", te.Issuer)
	}
	if !strings.HasPrefix(te.Path, "/") {
		v.add(p+".path", "must start with /")
	}
	if te.Algorithm != "ES256" && te.Algorithm != "RS256" {
		v.add(p+".algorithm", "must be ES256 or RS256, got %q", te.Algorithm)
	}
	if te.MaxConcurrentHashChecks < 0 {
		v.add(p+".max_concurrent_hash_checks", "must not be negative")
	}
	if len(te.Clients) == 0 {
		v.add(p+".clients", "at least one client is required (create one with: tokengate new-client NAME)")
	}
	ids := map[string]bool{}
	firstCost, firstCostAt := 0, ""
	for i, cl := range te.Clients {
		cp := fmt.Sprintf("%s.clients[%d]", p, i)
		switch {
		case cl.ClientID == "":
			v.add(cp+".client_id", "required")
		case strings.ContainsAny(cl.ClientID, ":\x00") || strings.TrimSpace(cl.ClientID) != cl.ClientID:
			v.add(cp+".client_id", "must not contain ':' or surrounding spaces")
		case ids[cl.ClientID]:
			v.add(cp+".client_id", "duplicate client %q", cl.ClientID)
		}
		ids[cl.ClientID] = true
		if cl.ClientSecret != "" {
			v.add(cp+".client_secret", "plain-text secrets are refused; store its bcrypt hash in client_secret_hash (tokengate hash-secret)")
		}
		if cl.ClientSecretHash == "" && cl.SecretFromFile == "" {
			v.add(cp+".client_secret_hash", "required, or client_secret_file (tokengate hash-secret prints a hash)")
		} else if len(cl.SecretFromFile) > 72 {
			v.add(cp+".client_secret_file", "the secret is longer than bcrypt's 72 bytes")
		} else if cost, err := bcrypt.Cost([]byte(cl.ClientSecretHash)); cl.ClientSecretHash != "" && err != nil {
			v.add(cp+".client_secret_hash", "not a bcrypt hash: %v", err)
		} else if cl.ClientSecretHash != "" {
			switch {
			case firstCost == 0:
				firstCost, firstCostAt = cost, cp
			case cost != firstCost:
				v.add(cp+".client_secret_hash", "bcrypt cost %d, but %s has cost %d: every client's hash must have one cost, or a wrong secret for the cheaper client answers faster than for an unknown id, which tells that the id exists (rehash with tokengate hash-secret)", cost, firstCostAt, firstCost)
			}
		}
		if len(cl.Scopes) == 0 {
			v.add(cp+".scopes", "at least one scope is required")
		}
		for _, s := range cl.Scopes {
			if !scopeRE.MatchString(s) {
				v.add(cp+".scopes", "invalid scope %q", s)
			}
		}
		for _, s := range cl.DefaultScopes {
			if !slices.Contains(cl.Scopes, s) {
				v.add(cp+".default_scopes", "%q is not in scopes", s)
			}
		}
	}
}
