package stack

import (
	"crypto/tls"
	"fmt"
	"net/http"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/egress"
	"github.com/tokengate/tokengate/proxy"
)

// The calling side's options, built from an egress entry's configuration
// the same way for serve, check and authorize.

// TokenOptions describes an egress entry's token requests.
func TokenOptions(t config.EgressToken) (egress.TokenOptions, error) {
	client, err := tokenClient(t)
	if err != nil {
		return egress.TokenOptions{}, err
	}
	return egress.TokenOptions{
		URL: t.URL, ClientID: t.ClientID, ClientSecret: t.ClientSecret,
		Auth: egress.AuthStyle(t.Auth), Scopes: t.Scopes, Params: t.Params,
		DefaultLifetime: t.DefaultLifetime.D(), Client: client,
	}, nil
}

// tokenClient is the HTTP client for an entry's token requests.
func tokenClient(t config.EgressToken) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pool, err := proxy.LoadCertPool(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("token.ca_file: %w", err)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{Transport: tr, Timeout: t.Timeout.D()}, nil
}

// AuthCodeOptions describes an authorization-code entry (grant:
// authorization_code) whose token requests topts describes.
func AuthCodeOptions(c config.Egress, topts egress.TokenOptions) egress.AuthCodeOptions {
	return egress.AuthCodeOptions{
		Name: c.Name, Token: topts, AuthorizeURL: c.Token.AuthorizeURL, RedirectURI: c.Token.RedirectURI,
		RefreshTokenFile: c.Token.RefreshTokenFile,
	}
}
