package main

import (
	"os"
	"path/filepath"
	"testing"
)

// writeConfig writes y to a fresh tokengate.yaml and returns its path.
func writeConfig(t *testing.T, y string) string {
	t.Helper()
	return write(t, t.TempDir(), "tokengate.yaml", y)
}

// write writes data to dir/name and returns its path.
func write(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
