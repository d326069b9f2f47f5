package proxy

import (
	"testing"
	"time"
)

func TestThrottle(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	th := &throttle{every: time.Second}
	for _, c := range []struct {
		at      time.Duration
		ok      bool
		skipped int
	}{
		{0, true, 0},
		{100 * time.Millisecond, false, 0},
		{999 * time.Millisecond, false, 0},
		{time.Second, true, 2},
		{1500 * time.Millisecond, false, 0},
		{5 * time.Second, true, 1},
		{6 * time.Second, true, 0},
	} {
		ok, skipped := th.allow(t0.Add(c.at))
		if ok != c.ok || skipped != c.skipped {
			t.Errorf("at %v: allow = %v, %d; want %v, %d", c.at, ok, skipped, c.ok, c.skipped)
		}
	}
}
