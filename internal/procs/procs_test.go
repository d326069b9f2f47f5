package procs

import (
	"io/fs"
	"testing"
)

func TestDecide(t *testing.T) {
	for _, c := range []struct {
		name        string
		env         string
		procs, cpus int
		quota       bool
		want        int
	}{
		{"the machine's CPUs", "", 2, 2, false, 3},
		{"GOMAXPROCS set", "2", 2, 2, false, 0},
		{"the runtime chose fewer (a quota or affinity)", "", 2, 8, false, 0},
		{"a cgroup quota", "", 2, 2, true, 0},
		{"one CPU", "", 1, 1, false, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := decide(c.env, c.procs, c.cpus, c.quota); got != c.want {
				t.Fatalf("decide = %d, want %d", got, c.want)
			}
		})
	}
}

func TestCPUQuota(t *testing.T) {
	for _, c := range []struct {
		name  string
		files map[string]string
		want  bool
	}{
		{"no cgroup files", nil, false},
		{"v2 without a quota", map[string]string{"/sys/fs/cgroup/cpu.max": "max 100000\n"}, false},
		{"v2 quota", map[string]string{"/sys/fs/cgroup/cpu.max": "150000 100000\n"}, true},
		{"v1 without a quota", map[string]string{"/sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1\n"}, false},
		{"v1 quota", map[string]string{"/sys/fs/cgroup/cpu/cpu.cfs_quota_us": "50000\n"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			read := func(name string) ([]byte, error) {
				if v, ok := c.files[name]; ok {
					return []byte(v), nil
				}
				return nil, fs.ErrNotExist
			}
			if got := cpuQuota(read); got != c.want {
				t.Fatalf("cpuQuota = %v, want %v", got, c.want)
			}
		})
	}
}
