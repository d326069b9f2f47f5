package status

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// clock is a settable clock for Traffic.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestTrafficCountsTheLastMinutes: requests are counted per route, per
// minute and by decision; refusals by reason; a minute older than the
// window no longer counts, and a route with nothing left in it is
// forgotten.
func TestTrafficCountsTheLastMinutes(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 7, 10, 0, 30, 0, time.UTC)}
	tr := NewTraffic(c.now)
	for _, d := range []string{"allow", "allow", "no_token", "invalid_token", "invalid_token", "queued", "duplicate", "public"} {
		tr.Record("api", d)
	}
	c.add(time.Minute)
	tr.Record("api", "unavailable")
	tr.Record("(none)", "no_route")

	got := tr.Counts()
	api := got["api"]
	if api.Requests != 9 || api.Refused != 4 || api.ByDecision["allow"] != 2 || len(api.Minutes) != Window {
		t.Fatalf("api: %+v", api)
	}
	last, prev := api.Minutes[Window-1], api.Minutes[Window-2]
	if last.Requests != 1 || last.Refused != 1 || prev.Requests != 8 || prev.Refused != 3 || !last.Start.Equal(time.Date(2026, 12, 7, 10, 1, 0, 0, time.UTC)) {
		t.Fatalf("api minutes: prev %+v last %+v", prev, last)
	}
	want := []Reason{{"invalid_token", 2}, {"no_token", 1}, {"unavailable", 1}}
	if r := api.Reasons(); !slices.Equal(r, want) {
		t.Fatalf("reasons %v, want %v", r, want)
	}
	if n := got["(none)"]; n.Requests != 1 || n.Refused != 1 {
		t.Fatalf("(none): %+v", n)
	}

	c.add(time.Duration(Window-1) * time.Minute) // the first minute leaves the window
	if api := tr.Counts()["api"]; api.Requests != 1 || api.Minutes[0].Requests != 1 {
		t.Fatalf("after %d minutes: %+v", Window, api)
	}
	c.add(time.Minute)
	if got := tr.Counts(); len(got) != 0 {
		t.Fatalf("nothing in the window, still counted: %+v", got)
	}
	tr.Record("api", "allow") // a bucket reused after a full turn starts from zero
	if api := tr.Counts()["api"]; api.Requests != 1 {
		t.Fatalf("reused bucket: %+v", api)
	}
}

// TestTrafficBoundsTheRoutes: past maxRoutes route names, requests are
// counted under OtherRoutes.
func TestTrafficBoundsTheRoutes(t *testing.T) {
	tr := NewTraffic(nil)
	for i := range maxRoutes + 10 {
		tr.Record(string(rune('a'+i%26))+time.Duration(i).String(), "allow")
	}
	got := tr.Counts()
	if len(got) != maxRoutes+1 || got[OtherRoutes].Requests != 10 {
		t.Fatalf("%d routes, other %+v", len(got), got[OtherRoutes])
	}
}
