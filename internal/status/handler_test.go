package status

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

// fixed is a Source that always describes the same gate.
type fixed Snapshot

func (f fixed) Status(context.Context) Snapshot { return Snapshot(f) }

const evil = `</style><script>alert(1)</script><b onclick="x()">"'&`

// evilSnapshot has markup in every text the page shows.
func evilSnapshot() Snapshot {
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	tr := NewTraffic(func() time.Time { return now })
	tr.Record(evil, evil)
	c := tr.Counts()[evil]
	return Snapshot{
		Version: evil, Now: now, Started: now.Add(-time.Hour), UptimeSeconds: 3600, WindowMinutes: Window,
		Issuers:     []Issuer{{Name: evil, Kind: KindJWT, KeyIDs: []string{evil}, LastError: evil, Discovery: evil}},
		Routes:      []Route{{Name: evil, Auth: evil, Counts: c, Reasons: c.Reasons()}},
		Egress:      []Egress{{Name: evil, Grant: evil, LastResult: evil, LastError: evil, LastAttempt: now}},
		Replay:      Replay{Kind: evil, Error: evil},
		SharedRedis: SharedRedis{Configured: true, Error: evil},
		Queue:       &Queue{Store: evil, Error: evil, StatsError: evil, Routes: []QueueRoute{{Route: evil, Pending: 1}}},
		Reload:      Reload{At: now, Result: ReloadFailure, Trigger: evil, Error: evil},
	}
}

func serve(t *testing.T, h http.Handler) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	resp := rec.Result()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestPageEscapesEveryValue: markup in any name or error text (an issuer's
// error can hold an IdP's HTML error page) is shown as text: no tag, no
// attribute, nothing that ends the style element.
func TestPageEscapesEveryValue(t *testing.T) {
	resp, body := serve(t, Page(fixed(evilSnapshot())))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	for _, bad := range []string{"<script", "<b ", `onclick="`, "</style><"} {
		if strings.Contains(body, bad) {
			t.Errorf("the page holds %q", bad)
		}
	}
	if n := strings.Count(body, "&lt;/style&gt;&lt;script&gt;alert(1)&lt;/script&gt;"); n < 10 {
		t.Errorf("the markup is shown escaped %d times, want every value", n)
	}
	if strings.Count(body, "</style>") != 1 || strings.Count(body, "<style>") != 1 {
		t.Errorf("the page has more than its one style element")
	}
}

// TestPolicyCoversTheStyle: the Content-Security-Policy names the SHA-256
// of the page's one inline style element exactly, and allows nothing
// else (no script, no image, no form, no framing); both answers carry it
// with nosniff and no-store.
func TestPolicyCoversTheStyle(t *testing.T) {
	_, body := serve(t, Page(fixed(Snapshot{})))
	m := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no style element")
	}
	sum := sha256.Sum256([]byte(m[1]))
	want := "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	for _, c := range []struct {
		name string
		h    http.Handler
		ct   string
	}{{"page", Page(fixed(Snapshot{})), "text/html; charset=utf-8"}, {"json", JSON(fixed(Snapshot{})), "application/json"}} {
		resp, _ := serve(t, c.h)
		h := resp.Header
		if h.Get("Content-Security-Policy") != want || h.Get("Content-Type") != c.ct || h.Get("X-Content-Type-Options") != "nosniff" ||
			h.Get("Cache-Control") != "no-store" || h.Get("Referrer-Policy") != "no-referrer" || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s headers %v, want policy %q", c.name, h, want)
		}
	}
}

// TestJSONIsTheSnapshot: /status.json decodes back to the snapshot, with
// markup escaped in the encoding.
func TestJSONIsTheSnapshot(t *testing.T) {
	s := evilSnapshot()
	_, body := serve(t, JSON(fixed(s)))
	if strings.Contains(body, "<script") {
		t.Errorf("raw markup in the JSON")
	}
	var got Snapshot
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if got.Version != evil || got.Issuers[0].LastError != evil || got.Routes[0].Counts.Requests != 1 || got.Queue.Routes[0].Pending != 1 || got.Reload.Result != ReloadFailure {
		t.Errorf("decoded %+v", got)
	}
}
