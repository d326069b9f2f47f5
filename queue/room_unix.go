//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package queue

import "syscall"

// diskFree is the space an unprivileged process may still use on the
// disk holding dir (-1: unknown).
func diskFree(dir string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return -1
	}
	return int64(st.Bavail) * int64(st.Bsize)
}
