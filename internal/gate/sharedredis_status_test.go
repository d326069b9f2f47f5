package gate

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/internal/status"
	"github.com/tokengate/tokengate/signature/redistest"
)

// TestStatusPageShowsTheSharedRedis: the redis: block's server is on the
// status page (JSON and HTML): reachable with the right password,
// unreachable with the server's reason and no password with a wrong one,
// "no redis: block" without one. /readyz stays ready either way (what
// uses it falls back by design), and a gate whose routes keep no replay
// ids says replay kind "none" in JSON as the page does.
func TestStatusPageShowsTheSharedRedis(t *testing.T) {
	srv := redistest.Start(t)
	const pass = "Corr3ct-Redis-Pass"
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr(), DisableIdentity: true})
	if err := admin.ConfigSet(t.Context(), "requirepass", pass).Err(); err != nil {
		t.Fatal(err)
	}
	_ = admin.Close()
	const base = `listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream: http://127.0.0.1:9
routes:
  - { name: open, path: /open, public: true }
`
	for _, tc := range []struct {
		name, password string
		block          bool
		want           status.SharedRedis
		page           string
	}{
		{"right password", pass, true, status.SharedRedis{Configured: true, Reachable: true}, "reachable"},
		{"wrong password", "Wr0ng-Redis-Pass", true, status.SharedRedis{Configured: true}, "unreachable"},
		{"no block", "", false, status.SharedRedis{}, "No redis: block"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := base
			if tc.block {
				t.Setenv("TG_SHARED_REDIS_URL", fmt.Sprintf("redis://:%s@%s/0", url.QueryEscape(tc.password), srv.Addr()))
				y += "redis: { url: '${TG_SHARED_REDIS_URL}', timeout: 2s }\n"
			}
			g := startYAML(t, y)
			f := &statusFixture{g: g, admin: "http://" + g.AdminAddr()}
			var s snap
			eventually(t, "the shared Redis pinged", func() bool {
				s = f.snapshot(t)
				return !strings.Contains(s.SharedRedis.Error, "not reached yet")
			})
			got := s.SharedRedis
			if tc.want.Configured && !tc.want.Reachable && !strings.Contains(got.Error, "WRONGPASS") {
				t.Errorf("shared_redis error %q, want the server's WRONGPASS", got.Error)
			}
			got.Error = ""
			if got != tc.want {
				t.Errorf("shared_redis %+v, want %+v", s.SharedRedis, tc.want)
			}
			if s.Replay != (status.Replay{Kind: status.ReplayNone}) {
				t.Errorf("replay %+v, want kind none", s.Replay)
			}
			page := get(t, f.admin+"/")
			sec := page[strings.Index(page, `<section id="shared-redis">`):]
			sec = sec[:strings.Index(sec, "</section>")]
			if !strings.Contains(sec, tc.page) || !strings.Contains(page, "No route keeps replay ids") {
				t.Errorf("page section:\n%s", sec)
			}
			if tc.block && !strings.Contains(sec, "Readiness does not depend on it") {
				t.Errorf("the page does not say readiness ignores it:\n%s", sec)
			}
			raw := get(t, f.admin+"/status.json")
			if strings.Contains(raw+page, "Redis-Pass") {
				t.Fatal("a password is shown")
			}
			resp, err := http.Get(f.admin + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("/readyz %d %s, want ready whatever Redis says", resp.StatusCode, b)
			}
		})
	}
}
