package issuer

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

func (s *Server) prepareMetadata(u *url.URL) error {
	origin := u.Scheme + "://" + u.Host
	basePath := strings.TrimSuffix(u.Path, "/")
	jwksPath := basePath + "/.well-known/jwks.json"
	algs := s.Algorithms()
	meta := map[string]any{
		"issuer":                                s.o.Issuer,
		"token_endpoint":                        origin + s.o.Path,
		"jwks_uri":                              origin + jwksPath,
		"grant_types_supported":                 []string{GrantClientCredentials},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"response_types_supported":              []string{},
		"scopes_supported":                      s.allScopes(),
	}
	var err error
	if s.metaAS, err = json.Marshal(meta); err != nil {
		return err
	}
	meta["id_token_signing_alg_values_supported"] = algs
	meta["subject_types_supported"] = []string{"public"}
	if s.metaOIDC, err = json.Marshal(meta); err != nil {
		return err
	}
	var set jose.JSONWebKeySet
	set.Keys = s.PublicKeys()
	if s.jwks, err = json.Marshal(set); err != nil {
		return err
	}
	s.paths = map[string]http.HandlerFunc{
		s.o.Path: s.token,
		basePath + "/.well-known/openid-configuration":       s.static(s.metaOIDC),
		"/.well-known/oauth-authorization-server" + basePath: s.static(s.metaAS),
		basePath + "/.well-known/oauth-authorization-server": s.static(s.metaAS),
		jwksPath: s.static(s.jwks),
	}
	return nil
}

func (s *Server) allScopes() []string {
	seen := map[string]bool{}
	out := []string{}
	for _, c := range s.o.Clients {
		for _, sc := range c.Scopes {
			if !seen[sc] {
				seen[sc] = true
				out = append(out, sc)
			}
		}
	}
	return out
}

func (s *Server) static(body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		dropBody(w, r) // metadata requests carry no body worth waiting for
		s.startWrite(w)
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(body)
	}
}
