package memlimit

import (
	"math"
	"runtime/debug"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

func TestApply(t *testing.T) {
	const limit = 512 << 20
	cases := []struct {
		name, gomemlimit string
		provider         memlimit.Provider
		want             int64
	}{
		{"cgroup limit: 90 % of it", "", memlimit.Limit(limit), limit * 9 / 10},
		{"GOMEMLIMIT set: left alone", "100MiB", memlimit.Limit(limit), math.MaxInt64},
		{"no cgroup limit: none", "", func() (uint64, error) { return 0, memlimit.ErrNoLimit }, math.MaxInt64},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("GOMEMLIMIT", c.gomemlimit)
			t.Setenv("AUTOMEMLIMIT", "0.9")
			before := debug.SetMemoryLimit(math.MaxInt64)
			defer debug.SetMemoryLimit(before)
			got, err := apply(c.provider)
			if err != nil {
				t.Fatal(err)
			}
			if now := debug.SetMemoryLimit(-1); got != c.want || now != c.want {
				t.Fatalf("Apply returned %d and the runtime's limit is %d; want %d", got, now, c.want)
			}
		})
	}
}

// TestApplyOnThisMachine reads the real cgroup: whatever it says, Apply
// fails on nothing and never sets a limit below the ratio of one.
func TestApplyOnThisMachine(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	before := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(before)
	got, err := Apply()
	if err != nil {
		t.Fatal(err)
	}
	if got <= 0 {
		t.Fatalf("limit %d", got)
	}
	t.Logf("limit in force: %d", got)
}
