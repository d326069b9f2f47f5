package diagnose

import (
	"bytes"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/egress/egresstest"
	"github.com/tokengate/tokengate/signature/redistest"
)

// TestCheckPingsTheSharedRedis: `tokengate check` PINGs the redis: block's
// server with its AUTH: a wrong password (which a running gate survives,
// ready, its rate limits and shared tokens falling back) is a problem
// whose message names redis.url and the server's reason and never the
// password; the right one passes. Both on the receiving side and on a
// gate that only calls out.
func TestCheckPingsTheSharedRedis(t *testing.T) {
	srv := redistest.Start(t)
	const pass = "Corr3ct-Redis-Pass"
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr(), DisableIdentity: true})
	if err := admin.ConfigSet(t.Context(), "requirepass", pass).Err(); err != nil {
		t.Fatal(err)
	}
	_ = admin.Close()
	receiving := `listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream: http://127.0.0.1:9
routes:
  - { name: open, path: /open, public: true }
`
	vendor := egresstest.NewTokenEndpoint("client", "s3cret", time.Hour)
	defer vendor.Close()
	t.Setenv("TG_CHECK_VENDOR", "s3cret")
	callingOnly := fmt.Sprintf(`admin_listen: 127.0.0.1:0
egress:
  - name: vendor
    listen: 127.0.0.1:0
    upstream: https://api.vendor.example
    insecure_http: true
    token: { url: %s, client_id: client, client_secret: "${TG_CHECK_VENDOR}" }
`, vendor.URL)
	for _, side := range []struct{ name, yaml string }{{"receiving", receiving}, {"calling side only", callingOnly}} {
		for _, tc := range []struct {
			name, password string
			problem        bool
			want           string
		}{
			{"right password", pass, false, "answers PING"},
			{"wrong password", "Wr0ng-Redis-Pass", true, "redis.url: the shared Redis does not answer PING (WRONGPASS"},
		} {
			t.Run(side.name+"/"+tc.name, func(t *testing.T) {
				t.Setenv("TG_CHECK_REDIS_URL", fmt.Sprintf("redis://:%s@%s/0", url.QueryEscape(tc.password), srv.Addr()))
				path := writeConfig(t, side.yaml+"redis: { url: '${TG_CHECK_REDIS_URL}', timeout: 2s }\n")
				var out bytes.Buffer
				err := Check(t.Context(), path, &out)
				if (err != nil) != tc.problem || !strings.Contains(out.String(), tc.want) {
					t.Fatalf("check: %v, want a problem: %v, and %q in:\n%s", err, tc.problem, tc.want, out.String())
				}
				if strings.Contains(out.String(), "Redis-Pass") {
					t.Fatalf("check printed the password:\n%s", out.String())
				}
			})
		}
	}
}
