// Package procs gives a gate whose request path waits on fsync one Go
// processor more than its CPUs. While a goroutine waits in fdatasync, Go
// hands its processor to other goroutines; when the call returns, the
// goroutine waits for a processor behind every runnable one. A queued
// route's file store commits (two fdatasyncs) while its senders wait for
// their 202, so on a busy machine that wait sets their rate: one
// processor more let a 2-core gate acknowledge 13 % more at 32 sender
// connections, while the bare reverse proxy it was measured against
// gained nothing from it (docs/performance.md).
package procs

import (
	"os"
	"runtime"
	"strings"
	"sync"
)

var once sync.Once

// OneMoreForFsync raises GOMAXPROCS by one, once per process, unless
// GOMAXPROCS is set in the environment or a CPU quota applies (the Go
// runtime then already chose fewer processors than CPUs, or the cgroup
// sets a quota: an extra thread could be throttled). It returns the
// processors now in force and whether it raised them.
func OneMoreForFsync() (int, bool) {
	raised := false
	once.Do(func() {
		n := decide(os.Getenv("GOMAXPROCS"), runtime.GOMAXPROCS(0), runtime.NumCPU(), cpuQuota(os.ReadFile))
		if n > 0 {
			runtime.GOMAXPROCS(n)
			raised = true
		}
	})
	return runtime.GOMAXPROCS(0), raised
}

// decide is the processors to set (0: leave them): procs+1 when nothing
// chose them but the machine's CPU count.
func decide(env string, procs, cpus int, quota bool) int {
	if env != "" || quota || procs != cpus {
		return 0
	}
	return procs + 1
}

// cpuQuota reports whether the process's cgroup limits its CPU time:
// cgroup v2's cpu.max other than "max …", or v1's cfs_quota_us other
// than -1. Files it cannot read say nothing.
func cpuQuota(read func(string) ([]byte, error)) bool {
	if b, err := read("/sys/fs/cgroup/cpu.max"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 && f[0] != "max" {
			return true
		}
	}
	if b, err := read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"); err == nil {
		if v := strings.TrimSpace(string(b)); v != "" && v != "-1" {
			return true
		}
	}
	return false
}
