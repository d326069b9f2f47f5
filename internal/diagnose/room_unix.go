//go:build linux || darwin

package diagnose

import "syscall"

// diskRoom is how many bytes this process may still write on the
// filesystem holding path, and how many inodes are free there (-1:
// unknown; a filesystem that reports no inode table has no such limit).
func diskRoom(path string) (bytes, inodes int64) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return -1, -1
	}
	inodes = -1
	if st.Files > 0 {
		inodes = int64(st.Ffree)
	}
	return int64(st.Bavail) * int64(st.Bsize), inodes
}

// mayCreateIn reports whether this process may create entries in dir
// (access(2) with W_OK|X_OK: a read-only filesystem fails it even for
// root).
func mayCreateIn(dir string) error { return syscall.Access(dir, 0x2|0x1) }

// mayWrite reports whether this process may write path (access(2) W_OK).
func mayWrite(path string) error { return syscall.Access(path, 0x2) }
