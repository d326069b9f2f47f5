// Package memlimit gives the Go runtime a soft memory limit derived from
// the container's: 90 % of the cgroup (v2 or v1) memory limit, so that the
// garbage collector works harder as the process nears the limit instead of
// letting the heap grow to twice its live size and the container be
// killed. GOMEMLIMIT, when set, wins (and AUTOMEMLIMIT=off, or a ratio
// such as AUTOMEMLIMIT=0.8, are honoured). Without a cgroup limit nothing
// changes. The cgroup is read by github.com/KimMachineGun/automemlimit.
package memlimit

import (
	"github.com/KimMachineGun/automemlimit/memlimit"
)

// Ratio is the share of the cgroup memory limit given to the Go runtime;
// the rest is for what the runtime does not count (stacks of the OS,
// fragmentation, page cache charged to the container).
const Ratio = 0.9

// Apply sets the runtime's soft memory limit (debug.SetMemoryLimit) from
// the cgroup memory limit, unless GOMEMLIMIT is set. It returns the limit
// now in force (math.MaxInt64: none). Call it once, first thing in main.
func Apply() (int64, error) { return apply(memlimit.FromCgroup) }

// apply is Apply with the limit read by p.
func apply(p memlimit.Provider) (int64, error) {
	return memlimit.Set(memlimit.WithProvider(p), memlimit.WithRatio(Ratio))
}
