package diagnose

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/tokengate/tokengate/internal/gate"
	"github.com/tokengate/tokengate/queue"
)

func queuedCheckConfig(t *testing.T, store string) string {
	t.Helper()
	return queuedCheckConfigMax(t, store, "1GiB")
}

func queuedCheckConfigMax(t *testing.T, store, maxBytes string) string {
	t.Helper()
	t.Setenv("GH_CHECK_QUEUE", "check-queue-secret")
	return writeConfig(t, fmt.Sprintf(`
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream: http://127.0.0.1:9
queue: { store: %q, max_bytes: %s }
routes:
  - name: gh
    path: /hooks/gh
    signature: { scheme: github, secrets: ["${GH_CHECK_QUEUE}"] }
    delivery: { mode: queued }
`, store, maxBytes))
}

// TestCheckOpensTheQueueStore: check opens the queue store as serve
// would; a file store a running gate holds is fine, one that cannot be
// opened or a Redis that does not answer is a problem.
func TestCheckOpensTheQueueStore(t *testing.T) {
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadRedis := ln.Addr().String()
	ln.Close()
	for _, c := range []struct {
		name    string
		store   func(t *testing.T) string // the queue.store URL, with whatever holds it
		want    string
		problem bool
		max     string // queue.max_bytes (default 1GiB)
	}{
		{"free file store", func(t *testing.T) string {
			dir := filepath.Join(t.TempDir(), "q")
			s, err := queue.OpenFile(queue.FileOptions{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			return "file://" + dir
		}, "writable (0 pending, 0 dead)", false, ""},
		{"not created yet", func(t *testing.T) string {
			dir := filepath.Join(t.TempDir(), "q")
			t.Cleanup(func() {
				if _, err := os.Stat(dir); err == nil {
					t.Error("check created the store's directory")
				}
			})
			return "file://" + dir
		}, "not created yet", false, ""},
		{"not created, under a file", func(t *testing.T) string { return "file://" + filepath.Join(notADir, "q") }, "not a directory", true, ""},
		{"not created, max_bytes past the disk's room", func(t *testing.T) string {
			return "file://" + filepath.Join(t.TempDir(), "q")
		}, "less than queue.max_bytes", false, "1048576GiB"},
		{"not created, its directory writable by everyone", func(t *testing.T) string {
			dir := filepath.Join(t.TempDir(), "q")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, 0o777); err != nil {
				t.Fatal(err)
			}
			return "file://" + dir
		}, "writable by every local user", true, ""},
		{"not created, a link to nowhere", func(t *testing.T) string {
			dir := filepath.Join(t.TempDir(), "q")
			if err := os.Symlink(filepath.Join(t.TempDir(), "gone", "x"), dir); err != nil {
				t.Fatal(err)
			}
			return "file://" + dir
		}, "symbolic link to a path that does not exist", true, ""},
		{"not created, a name too long", func(t *testing.T) string {
			return "file://" + createsNothing(t, strings.Repeat("n", 300))
		}, "file name too long", true, ""},
		{"not created, a path too long", func(t *testing.T) string {
			return "file://" + createsNothing(t, strings.Repeat(strings.Repeat("c", 200)+"/", 21))
		}, "queue.store:", true, ""},
		{"not created, a control socket path too long", func(t *testing.T) string {
			return "file://" + filepath.Join(t.TempDir(), strings.Repeat("s", 110))
		}, "longer than a unix socket's path", false, ""},
		{"an empty queue.db a failed serve left", func(t *testing.T) string {
			dir := filepath.Join(t.TempDir(), "q")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			db := filepath.Join(dir, queue.FileName)
			if err := os.WriteFile(db, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if fi, err := os.Stat(db); err != nil || fi.Size() != 0 {
					t.Errorf("check wrote into the empty %s: %v", queue.FileName, err)
				}
			})
			return "file://" + dir
		}, "not created yet", false, ""},
		{"held by a running gate", func(t *testing.T) string {
			store := "file://" + filepath.Join(t.TempDir(), "q")
			g, err := gate.New(queuedCheckConfig(t, store), gate.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := g.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = g.Shutdown(context.Background()) })
			return store
		}, "in use by a running gate (0 pending, 0 dead)", false, ""},
		{"locked, no control socket", func(t *testing.T) string {
			dir := filepath.Join(t.TempDir(), "q")
			s, err := queue.OpenFile(queue.FileOptions{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return "file://" + dir
		}, "in use by a running gate", false, ""},
		{"not a directory", func(t *testing.T) string { return "file://" + notADir }, "not a directory", true, ""},
		{"redis down", func(t *testing.T) string { return "redis://" + deadRedis }, "queue.store: cannot be written", true, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			max := c.max
			if max == "" {
				max = "1GiB"
			}
			path := queuedCheckConfigMax(t, c.store(t), max)
			var out bytes.Buffer
			err := Check(t.Context(), path, &out)
			if !strings.Contains(out.String(), c.want) {
				t.Fatalf("check output has no %q:\n%s", c.want, out.String())
			}
			if (err != nil) != c.problem {
				t.Fatalf("check: %v, want a problem: %v\n%s", err, c.problem, out.String())
			}
		})
	}
}

// createsNothing is a store directory under a fresh directory, rel below
// it, and fails the test if check created anything there.
func createsNothing(t *testing.T, rel string) string {
	t.Helper()
	root := t.TempDir()
	t.Cleanup(func() {
		if entries, err := os.ReadDir(root); err != nil || len(entries) != 0 {
			t.Errorf("check created %d entries under %s: %v", len(entries), root, err)
		}
	})
	return filepath.Join(root, rel)
}

// TestCheckWritesNothingIntoAStore: check reads an existing file store
// without writing it: no commit, no change of mode, and an earlier
// version's layout is reported, not converted (an outside attack: check
// before an upgrade converted the store, and a rollback saw no backlog).
func TestCheckWritesNothingIntoAStore(t *testing.T) {
	for _, c := range []struct {
		name string
		fill func(t *testing.T, dir string)
		want string
	}{
		{"a message pending", func(t *testing.T, dir string) {
			s, err := queue.OpenFile(queue.FileOptions{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			q, err := queue.New(s, queue.Options{Routes: []queue.RouteOptions{{Name: "gh"}}, Target: &url.URL{Scheme: "http", Host: "127.0.0.1:9"}})
			if err != nil {
				t.Fatal(err)
			}
			m := &queue.Message{Route: "gh", Method: http.MethodPost, Path: "/hooks/gh", Header: http.Header{}, Body: []byte(`{}`)}
			if err := q.Enqueue(t.Context(), m); err != nil {
				t.Fatal(err)
			}
		}, "writable (1 pending, 0 dead)"},
		{"an earlier version's layout", func(t *testing.T, dir string) {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			db, err := bolt.Open(filepath.Join(dir, queue.FileName), 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.Update(func(tx *bolt.Tx) error {
				for _, b := range []string{"index", "payload"} {
					if _, err := tx.CreateBucket([]byte(b)); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}, "an earlier version's layout"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "q")
			c.fill(t, dir)
			path := filepath.Join(dir, queue.FileName)
			if err := os.Chmod(path, 0o640); err != nil {
				t.Fatal(err)
			}
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := Check(t.Context(), queuedCheckConfig(t, "file://"+dir), &out); err != nil || !strings.Contains(out.String(), c.want) {
				t.Fatalf("check: %v, want no problem and %q in:\n%s", err, c.want, out.String())
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) || fi.Mode().Perm() != 0o640 {
				t.Fatalf("check changed %s (same bytes: %v, mode %04o)", queue.FileName, bytes.Equal(before, after), fi.Mode().Perm())
			}
		})
	}
}
