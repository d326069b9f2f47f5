package config

import (
	"errors"
	"testing"
)

// FuzzParse: any bytes either load into a configuration that validates, or
// fail with *Error listing at least one problem. Nothing panics.
func FuzzParse(f *testing.F) {
	f.Add([]byte(validYAML))
	f.Add([]byte("upstream: http://u\nroutes: [{path: /a, public: true}]\n"))
	f.Add([]byte("upstream: ${X:-http://u}\nroutes: [{path_prefix: /, public: true}]\ncache: {max_entries: 1}\n"))
	f.Add([]byte("a: &x [1]\nb: *x\n"))
	f.Add([]byte("issuers: [{name: i, introspection: {url: 'https://x', client_id: a, client_secret: b}}]\n"))
	f.Add([]byte("upstream: {url: http://u, max_body_size: 1GiB}\nroutes: [{path: /a}]\ntoken_endpoint: {issuer: 'https://h', clients: [{client_id: c, client_secret_hash: '$2a$04$eSqaEAiMVOidFUUkz5EnHeodyG2rDjXGJE9QuTd7q1SFJLaz6XEQO', scopes: [s]}]}\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, dir, Options{LookupEnv: func(k string) (string, bool) { return "v", k == "X" }})
		if err == nil {
			if cfg == nil {
				t.Fatal("nil config without error")
			}
			if verr := cfg.Validate(); verr != nil {
				t.Fatalf("loaded config fails validation: %v", verr)
			}
			return
		}
		var ce *Error
		if errors.As(err, &ce) && len(ce.Errs) == 0 {
			t.Fatal("config.Error without problems")
		}
	})
}
