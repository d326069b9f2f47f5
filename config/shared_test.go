package config

import (
	"strings"
	"testing"
)

// key32 is base64 of 32 bytes, as `openssl rand -base64 32` prints.
const key32 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

// TestEgressSharedValidation: token.shared: redis needs the redis block and
// a token key that decodes to 32 bytes; an authorization-code entry that
// shares may leave refresh_token_file out; each mistake names its path.
func TestEgressSharedValidation(t *testing.T) {
	shared := strings.Replace(egressOnlyYAML, "      scopes:", "      shared: redis\n      scopes:", 1)
	redisBlock := "redis:\n  url: redis://127.0.0.1:6379/0\n  token_key: ${TG_KEY}\n"
	authCode := strings.Replace(shared, "      scopes:", "      grant: authorization_code\n      authorize_url: https://auth.clang.cloud/oauth2/auth\n      redirect_uri: https://app.example/cb\n      scopes:", 1)
	for _, tc := range []struct {
		name, yaml, key, path, msg string
	}{
		{"valid", shared + redisBlock, key32, "", ""},
		{"authorization code without a file", authCode + redisBlock, key32, "", ""},
		{"authorization code unshared needs the file", strings.Replace(authCode, "      shared: redis\n", "", 1) + redisBlock, key32, "egress[0].token.refresh_token_file", "unless shared: redis"},
		{"unknown value", strings.Replace(shared, "shared: redis", "shared: memcached", 1) + redisBlock, key32, "egress[0].token.shared", "must be redis"},
		{"no redis block", shared, "", "egress[0].token.shared", "top-level redis block"},
		{"no token key", shared + "redis:\n  url: redis://127.0.0.1:6379/0\n", "", "egress[0].token.shared", "redis.token_key"},
		{"short key", shared + redisBlock, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", "egress[0].token.shared", "base64 of 32 random bytes"},
		{"16-byte key", shared + redisBlock, "AAECAwQFBgcICQoLDA0ODw==", "egress[0].token.shared", "base64 of 32 random bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := env("DEPLOYTEQ_SECRET", "s", "TG_KEY", tc.key)
			if tc.path == "" {
				cfg, err := Parse([]byte(tc.yaml), t.TempDir(), o)
				if err != nil {
					t.Fatalf("valid config refused: %v", err)
				}
				if !cfg.Egress[0].Token.SharedOn() {
					t.Fatal("shared: redis not read")
				}
				return
			}
			wantFieldErr(t, tc.yaml, o, tc.path, tc.msg)
		})
	}
}
