package gate

import (
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/status"
)

// TestStatusPage: the admin listener's / and /status.json describe a
// running gate after real requests: the issuer's kid (found by discovery
// and a real JWKS), the routes' requests and refusals by reason, the
// egress token held (and the failures of the entries that have none), the
// replay store, the delivery queue's pending message and dead letter, and
// a refused then a successful reload. Neither answer ever holds a client secret, a token, a
// refresh token or a signing secret (the fixture's token endpoint echoes
// every credential it is sent), and both carry the security headers.
func TestStatusPage(t *testing.T) {
	f := newStatusFixture(t)
	f.traffic(t)

	t.Run("content", func(t *testing.T) {
		s := f.snapshot(t)
		if s.Version != "dev" || s.UptimeSeconds <= 0 || s.WindowMinutes != status.Window {
			t.Errorf("version %q, uptime %v, window %d", s.Version, s.UptimeSeconds, s.WindowMinutes)
		}
		idp := s.issuer("idp")
		if idp.Kind != status.KindJWT || !idp.Ready || !slices.Contains(idp.KeyIDs, f.idp.Signer().ID) || idp.KeysFetched.IsZero() || idp.Discovery != "done" || idp.LastError != "" {
			t.Errorf("issuer idp: %+v, want jwt, ready, kid %s, fetched, discovery done", idp, f.idp.Signer().ID)
		}
		if p := s.issuer("partner"); p.Kind != status.KindIntrospection || p.LastAnswer.IsZero() || !p.Ready {
			t.Errorf("issuer partner: %+v, want introspection that answered", p)
		}
		api := s.route("api")
		wantReasons := []status.Reason{{Reason: "insufficient_scope", Count: 1}, {Reason: "invalid_token", Count: 1}, {Reason: "no_token", Count: 1}}
		if api.Auth != "bearer" || api.Counts.Requests != 4 || api.Counts.Refused != 3 || api.Counts.ByDecision["allow"] != 1 || !slices.Equal(api.Reasons, wantReasons) {
			t.Errorf("route api: %+v, want bearer, 4 requests, 3 refused %v", api, wantReasons)
		}
		if last := api.Counts.Minutes[len(api.Counts.Minutes)-1]; len(api.Counts.Minutes) != status.Window || last.Requests+api.Counts.Minutes[len(api.Counts.Minutes)-2].Requests != 4 {
			t.Errorf("route api per minute: %+v", api.Counts.Minutes)
		}
		if gh := s.route("gh"); gh.Auth != "signature" || !gh.Queued || gh.Counts.Requests != 1 || gh.Counts.Refused != 0 {
			t.Errorf("route gh: %+v, want a queued signature route with 1 request, none refused", gh)
		}
		if none := s.route("(none)"); none.Auth != "" || none.Counts.Requests != 1 || !slices.Equal(none.Reasons, []status.Reason{{Reason: "no_route", Count: 1}}) {
			t.Errorf("route (none): %+v, want the request no route took", none)
		}
		v := s.egress(stEgressEntry)
		if !v.TokenHeld || v.ExpiresInSeconds < 1800 || v.LastResult != "success" || v.Grant != "client_credentials" || v.LastError != "" || v.Expires.IsZero() {
			t.Errorf("egress %s: %+v, want a token held for about an hour", stEgressEntry, v)
		}
		for _, name := range []string{stLeakyEntry, stAuthCodeEntry} {
			e := s.egress(name)
			if e.TokenHeld || e.Failures == 0 || e.LastResult == "success" || !strings.Contains(e.LastError, "[redacted]") || !strings.Contains(e.LastError, stInjectedHTML) {
				t.Errorf("egress %s: %+v, want failures with the secrets redacted and the HTML kept as text", name, e)
			}
		}
		if ac := s.egress(stAuthCodeEntry); ac.Grant != "authorization_code" || !strings.Contains(ac.LastError, "refresh_token=[redacted]") {
			t.Errorf("egress %s: grant %q result %q", stAuthCodeEntry, ac.Grant, ac.LastResult)
		}
		if s.Replay != (status.Replay{Kind: "memory", Reachable: true}) {
			t.Errorf("replay: %+v", s.Replay)
		}
		if q := s.Queue; q == nil || q.Store != "file" || !q.Writable {
			t.Fatalf("queue: %+v", q)
		}
		if gh := s.queue("gh"); gh.Pending != 1 || gh.Dead != 0 || gh.OldestAgeSeconds < 0 || gh.Bytes == 0 {
			t.Errorf("queue gh: %+v, want 1 pending", gh)
		}
		if d := s.queue("ghdead"); d.Pending != 0 || d.Dead != 1 {
			t.Errorf("queue ghdead: %+v, want 1 dead letter", d)
		}
		if s.Reload.Result != status.ReloadStart || s.Reload.At.IsZero() {
			t.Errorf("reload: %+v", s.Reload)
		}
	})

	t.Run("never a secret", func(t *testing.T) {
		page, js := get(t, f.admin+"/"), get(t, f.admin+"/status.json")
		for _, body := range []string{page, js} {
			low := strings.ToLower(body)
			for _, sec := range f.secret {
				if strings.Contains(body, sec) || strings.Contains(low, strings.ToLower(sec)) {
					t.Errorf("a secret or token (%.6q…) is shown", sec)
				}
			}
		}
		if strings.Contains(page, stInjectedHTML) || !strings.Contains(page, "&lt;img src=x onerror=&#34;document.title=&#39;pwned&#39;&#34;&gt;") {
			t.Errorf("the token endpoint's HTML is not escaped on the page")
		}
	})

	t.Run("headers", func(t *testing.T) {
		for _, c := range []struct{ path, contentType string }{{"/", "text/html; charset=utf-8"}, {"/status.json", "application/json"}} {
			resp, err := http.Get(f.admin + c.path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			h := resp.Header
			if resp.StatusCode != http.StatusOK || h.Get("Content-Type") != c.contentType || h.Get("X-Content-Type-Options") != "nosniff" ||
				h.Get("Cache-Control") != "no-store" || h.Get("Content-Security-Policy") != status.ContentSecurityPolicy ||
				!strings.HasPrefix(status.ContentSecurityPolicy, "default-src 'none'; style-src 'sha256-") {
				t.Errorf("%s: %d %v", c.path, resp.StatusCode, h)
			}
		}
		for _, u := range []string{f.admin + "/nothing-here", "http://" + f.g.Addr() + "/status.json", "http://" + f.g.Addr() + "/"} {
			resp, err := http.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Security-Policy") != "" {
				t.Errorf("%s: %d, want 404 (the status page is on the admin listener only)", u, resp.StatusCode)
			}
		}
	})

	t.Run("reloads", func(t *testing.T) {
		good := fileContent(t, f.path)
		write(t, filepath.Dir(f.path), filepath.Base(f.path), "listen: 127.0.0.1:0\nbogus_key: 1\n")
		if err := f.g.Reload(t.Context(), "status test"); err == nil {
			t.Fatal("a bad configuration reloaded")
		}
		s := f.snapshot(t)
		if s.Reload.Result != status.ReloadFailure || !strings.Contains(s.Reload.Error, "bogus_key") || s.Reload.At.IsZero() {
			t.Errorf("reload: %+v, want the failure and its problem", s.Reload)
		}
		if !strings.Contains(get(t, f.admin+"/"), "last reload refused") {
			t.Errorf("the page does not say the reload was refused")
		}
		write(t, filepath.Dir(f.path), filepath.Base(f.path), good+"\n# changed\n")
		if err := f.g.Reload(t.Context(), "status test"); err != nil {
			t.Fatal(err)
		}
		if s := f.snapshot(t); s.Reload.Result != status.ReloadSuccess || s.Reload.Error != "" || s.Reload.Trigger != "status test" {
			t.Errorf("reload: %+v, want the success", s.Reload)
		}
	})
}

// TestStatusPageOfAnEgressOnlyGate: a gate that only calls out shows its
// egress entries, and no issuer, route, replay store or queue.
func TestStatusPageOfAnEgressOnlyGate(t *testing.T) {
	e, up := vendor(t, stClientSecret, time.Hour)
	t.Setenv("TG_ST_EGRESS_SECRET", stClientSecret)
	g := startYAML(t, fmt.Sprintf(`
admin_listen: 127.0.0.1:0
egress:
  - name: only
    listen: 127.0.0.1:0
    upstream: %s
    insecure_http: true
    token: { url: %s, client_id: client, client_secret: "${TG_ST_EGRESS_SECRET}" }
`, up.URL, e.URL))
	f := &statusFixture{g: g, admin: "http://" + g.AdminAddr()}
	eventually(t, "the token", func() bool { return f.snapshot(t).egress("only").TokenHeld })
	s := f.snapshot(t)
	if len(s.Issuers) != 0 || len(s.Routes) != 0 || s.Replay.Kind != status.ReplayNone || s.Queue != nil || len(s.Egress) != 1 {
		t.Errorf("egress-only gate: %+v", s.Snapshot)
	}
	if page := get(t, f.admin+"/"); !strings.Contains(page, "No routes") || strings.Contains(page, stClientSecret) {
		t.Errorf("egress-only page:\n%s", page)
	}
}
