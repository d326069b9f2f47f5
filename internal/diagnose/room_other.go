//go:build !(linux || darwin)

package diagnose

// diskRoom: unknown on this system.
func diskRoom(string) (bytes, inodes int64) { return -1, -1 }

// mayCreateIn: not checked on this system (serve says so when it fails).
func mayCreateIn(string) error { return nil }

// mayWrite: not checked on this system.
func mayWrite(string) error { return nil }
