//go:build linux || darwin

package diagnose

import "syscall"

// diskRoom is how many bytes this process may still write on the
// filesystem holding path (-1: unknown).
func diskRoom(path string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return -1
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// mayCreateIn reports whether this process may create entries in dir
// (access(2) with W_OK|X_OK: a read-only filesystem fails it even for
// root).
func mayCreateIn(dir string) error { return syscall.Access(dir, 0x2|0x1) }
