package egress

import (
	"os"
	"path/filepath"
	"testing"
)

// TestResolvePath: every spelling of one refresh token file — relative,
// through a linked directory, through a link to the file, a chain of
// links, a link whose file does not exist yet — resolves to one path,
// the key of both the in-process lock and the lock file.
func TestResolvePath(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	real := filepath.Join(dir, "rt", "dt-rt")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(filepath.Join(dir, "rt"), 0o700))
	must(os.Symlink(filepath.Join("rt", "dt-rt"), filepath.Join(dir, "rtlink")))    // dangling until the file exists
	must(os.Symlink("rtlink", filepath.Join(dir, "rtlink2")))                       // a chain
	must(os.Symlink(filepath.Join(dir, "rt"), filepath.Join(dir, "rtdir")))         // a linked directory
	must(os.Symlink(filepath.Join("..", "rtlink"), filepath.Join(dir, "rt", "up"))) // relative to its own directory
	t.Chdir(dir)
	spellings := []string{real, "rt/dt-rt", "./rt/../rt/dt-rt", "rtlink", "rtlink2", "rtdir/dt-rt", filepath.Join(dir, "rtdir", "up")}
	for _, exists := range []bool{false, true} {
		if exists {
			must(os.WriteFile(real, []byte("rt\n"), 0o600))
		}
		for _, p := range spellings {
			if got := resolvePath(p); got != real {
				t.Errorf("file exists %v: resolvePath(%q) = %q, want %q", exists, p, got, real)
			}
		}
	}
	must(os.Symlink("loop", filepath.Join(dir, "loop")))
	if got := resolvePath("loop"); got != filepath.Join(dir, "loop") {
		t.Errorf("a link to itself: %q", got)
	}
}
