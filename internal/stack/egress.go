package stack

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

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

// TokenKey is the shared store's AES-256 key: redis.token_key decoded,
// or the content of redis.token_key_file. The error never holds the key.
func TokenKey(r *config.Redis) ([]byte, error) {
	if r == nil {
		return nil, errors.New("no redis block")
	}
	raw := r.TokenKey
	if raw == "" && r.TokenKeyFile != "" {
		b, err := os.ReadFile(r.TokenKeyFile)
		if err != nil {
			return nil, fmt.Errorf("redis.token_key_file: %w", err)
		}
		raw = string(b)
	}
	key, err := config.DecodeTokenKey(raw)
	if err != nil {
		if r.TokenKey == "" {
			return nil, fmt.Errorf("redis.token_key_file: %w", err)
		}
		return nil, fmt.Errorf("redis.token_key: %w", err)
	}
	return key, nil
}

// SharedStore is the shared token store of entry c (token.shared:
// redis), whose token requests topts describes, on client; onEvent
// counts what it does (nil: nothing).
func SharedStore(c config.Egress, r *config.Redis, client *redis.Client, topts egress.TokenOptions, log *zap.Logger, onEvent func(string)) (*egress.SharedStore, error) {
	key, err := TokenKey(r)
	if err != nil {
		return nil, err
	}
	return egress.NewSharedStore(egress.SharedOptions{
		Client: client, Key: key, Name: c.Name, Token: topts, AuthorizationCode: c.Token.AuthorizationCode(),
		OpTimeout: r.Timeout.D(), Logger: log, OnEvent: onEvent,
	})
}

// RedisLogger sends go-redis's own messages (reconnects, dial failures)
// to log at debug level; failures reach the log through the operations
// they fail. go-redis has one logger per process.
func RedisLogger(log *zap.Logger) { redis.SetLogger(redisLog{log}) }
