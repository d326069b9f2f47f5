package diagnose

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tokengate/tokengate/egress/egresstest"
	"github.com/tokengate/tokengate/signature/redistest"
)

func TestCheckFindsARefreshTokenDirectoryItCannotWrite(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("uses /proc, where nobody may create a file")
	}
	// /proc/self/comm is readable and non-empty; nobody, root included,
	// can create a file beside it.
	y := "admin_listen: 127.0.0.1:0\negress:\n  - name: vendor\n    listen: 127.0.0.1:0\n    upstream: https://vendor.example\n" +
		"    token:\n      grant: authorization_code\n      url: https://vendor.example/oauth2/token\n      authorize_url: https://vendor.example/oauth2/auth\n" +
		"      redirect_uri: http://127.0.0.1:8765/callback\n      client_id: c\n      client_secret: ${TG_TEST_SECRET}\n      refresh_token_file: /proc/self/comm\n"
	t.Setenv("TG_TEST_SECRET", "s")
	path := write(t, t.TempDir(), "tokengate.yaml", y)
	var out bytes.Buffer
	err := Check(t.Context(), path, &out)
	if err == nil || !strings.Contains(out.String(), "the directory /proc/self is not writable") {
		t.Fatalf("check: %v\n%s", err, out.String())
	}
}

// TestCheckEgress: check requests a token for every egress entry and
// reports every failure at once: bad credentials, a refused scope, an
// unreachable Token URL; a good entry shows its token's lifetime.
func TestCheckEgress(t *testing.T) {
	good := egresstest.NewTokenEndpoint("client", "s3cret", time.Hour)
	defer good.Close()
	scoped := egresstest.NewTokenEndpoint("client", "s3cret", time.Hour)
	defer scoped.Close()
	scoped.Script(func(int) egresstest.Answer {
		return egresstest.Answer{Status: 400, Body: `{"error":"invalid_scope","error_description":"scope admin is not allowed"}`}
	})
	down := freeAddr(t)
	t.Setenv("TG_GOOD", "s3cret")
	t.Setenv("TG_BAD", "nope")
	entry := func(name, url, env string) string {
		return fmt.Sprintf(`
  - name: %s
    listen: 127.0.0.1:0
    upstream: https://api.vendor.example
    insecure_http: true
    token: { url: %s, client_id: client, client_secret: "${%s}", scopes: [webhooks] }
`, name, url, env)
	}
	path := writeConfig(t, "admin_listen: 127.0.0.1:0\negress:"+
		entry("good", good.URL, "TG_GOOD")+entry("badsecret", good.URL, "TG_BAD")+
		entry("badscope", scoped.URL, "TG_GOOD")+entry("down", "http://"+down+"/token", "TG_GOOD"))
	var out bytes.Buffer
	err := Check(context.Background(), path, &out)
	if err == nil {
		t.Fatalf("check passed:\n%s", out.String())
	}
	for _, want := range []string{
		"good         basic",
		"token obtained, valid 1h0m0s, scope webhooks",
		"egress[1].token: " + good.URL + ": token endpoint: invalid_client (HTTP 401)",
		"egress[2].token: " + scoped.URL + ": token endpoint: invalid_scope (HTTP 400): scope admin is not allowed",
		"egress[3].token: http://" + down + "/token: token endpoint: unreachable",
		"3 problem(s)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "s3cret") || strings.Contains(out.String(), "tok_") {
		t.Errorf("a secret or token was printed:\n%s", out.String())
	}
}

// TestCheckEgressOwnTokenURL: an egress that uses this configuration's own
// token endpoint is checked against its clients (the endpoint is not
// running during check): right secret passes, wrong secret, unknown client
// and a scope the client lacks are reported.
func TestCheckEgressOwnTokenURL(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
	for _, tc := range []struct{ id, secret, scope, want string }{
		{"c", "right", "webhooks", "client c and its secret match"},
		{"c", "wrong", "webhooks", "egress[0].token.client_secret: does not match client c"},
		{"nobody", "right", "webhooks", `egress[0].token.client_id: "nobody" is not a client`},
		{"c", "right", "admin", `egress[0].token.scopes: "admin" is not a scope of client c`},
	} {
		t.Setenv("TG_OWN_SECRET", tc.secret)
		path := writeConfig(t, fmt.Sprintf(`
upstream: http://127.0.0.1:9
token_endpoint:
  issuer: http://localhost:8080
  clients: [{ client_id: c, client_secret_hash: %q, scopes: [webhooks] }]
routes: [{ path_prefix: /hooks }]
egress:
  - name: self
    upstream: http://localhost:8080
    insecure_http: true
    token: { url: http://localhost:8080/oauth2/token, client_id: %s, client_secret: "${TG_OWN_SECRET}", scopes: [%s] }
`, hash, tc.id, tc.scope))
		var out bytes.Buffer
		err := Check(context.Background(), path, &out)
		if !strings.Contains(out.String(), tc.want) || (err == nil) != (tc.secret == "right" && tc.id == "c" && tc.scope == "webhooks") {
			t.Errorf("%+v: err %v, output lacks %q:\n%s", tc, err, tc.want, out.String())
		}
	}
}

// TestCheckSharedRefreshTokenNeedsNoFile: a shared authorization-code
// entry keeps its refresh token in Redis; check neither asks for a file
// nor reads (or spends) the shared token (the store is empty: reading it
// would find no token). It PINGs the Redis, which answers.
func TestCheckSharedRefreshTokenNeedsNoFile(t *testing.T) {
	srv := redistest.Start(t)
	y := "admin_listen: 127.0.0.1:0\nredis: { url: \"" + srv.URL() + "\", token_key: \"${TG_TEST_KEY}\" }\negress:\n  - name: vendor\n    listen: 127.0.0.1:0\n    upstream: https://vendor.example\n" +
		"    token:\n      grant: authorization_code\n      url: https://vendor.example/oauth2/token\n      authorize_url: https://vendor.example/oauth2/auth\n" +
		"      redirect_uri: http://127.0.0.1:8765/callback\n      client_id: c\n      client_secret: ${TG_TEST_SECRET}\n      shared: redis\n"
	t.Setenv("TG_TEST_SECRET", "s")
	t.Setenv("TG_TEST_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	path := write(t, t.TempDir(), "tokengate.yaml", y)
	var out bytes.Buffer
	if err := Check(t.Context(), path, &out); err != nil || !strings.Contains(out.String(), "refresh token kept in Redis") {
		t.Fatalf("check: %v\n%s", err, out.String())
	}
}

// TestCheckLoadsTheTokenKeyFileAsServeDoes: a shared entry's
// redis.token_key_file that is missing, empty, not base64, or base64 of
// other than 32 bytes makes serve refuse to start; check fails on it
// too, naming the file's problem (and never printing the key), and
// passes a good one.
func TestCheckLoadsTheTokenKeyFileAsServeDoes(t *testing.T) {
	const good = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	rd := redistest.Start(t) // the Redis answers: only the key is wrong
	for _, tc := range []struct {
		name    string
		content *string // nil: no file
		want    string  // "" : check passes
	}{
		{"missing", nil, "no such file"},
		{"empty", ptr(""), "base64 of 32"},
		{"not base64", ptr("not a key!\n"), "base64 of 32"},
		{"16 bytes", ptr("AAECAwQFBgcICQoLDA0ODw==\n"), "base64 of 32"},
		{"good", ptr(good + "\n"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			keyFile := filepath.Join(dir, "redis-token-key")
			if tc.content != nil {
				write(t, dir, "redis-token-key", *tc.content)
			}
			y := "admin_listen: 127.0.0.1:0\nredis: { url: \"" + rd.URL() + "\", token_key_file: " + keyFile + " }\negress:\n  - name: vendor\n    listen: 127.0.0.1:0\n    upstream: https://vendor.example\n" +
				"    token:\n      grant: authorization_code\n      url: https://vendor.example/oauth2/token\n      authorize_url: https://vendor.example/oauth2/auth\n" +
				"      redirect_uri: http://127.0.0.1:8765/callback\n      client_id: c\n      client_secret: ${TG_TEST_SECRET}\n      shared: redis\n"
			t.Setenv("TG_TEST_SECRET", "s")
			path := write(t, dir, "tokengate.yaml", y)
			var out bytes.Buffer
			err := Check(t.Context(), path, &out)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("check refused a good key file: %v\n%s", err, out.String())
				}
				return
			}
			if err == nil || !strings.Contains(out.String(), "egress[0].token.shared: serve would refuse it: redis.token_key_file") || !strings.Contains(out.String(), tc.want) {
				t.Fatalf("check: %v\n%s", err, out.String())
			}
			if tc.content != nil && strings.TrimSpace(*tc.content) != "" && strings.Contains(out.String(), strings.TrimSpace(*tc.content)) {
				t.Fatalf("check printed the key file's content:\n%s", out.String())
			}
		})
	}
}

func ptr(s string) *string { return &s }
