package queue

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestFileStoreGroupCommit: N concurrent Adds share commits (and their
// fsyncs): fewer commits than messages, every message stored.
func TestFileStoreGroupCommit(t *testing.T) {
	const n = 64
	var mu sync.Mutex
	commits := map[int]bool{}
	calls := 0
	s, err := OpenFile(FileOptions{Dir: t.TempDir(), onCommit: func(txid int) {
		mu.Lock()
		commits[txid] = true
		calls++
		mu.Unlock()
	}})
	must(t, err)
	defer s.Close()
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			<-start
			errs <- s.Add(context.Background(), msg("gh", t0, fmt.Sprint(i)))
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err)
	}
	if calls != n {
		t.Fatalf("%d messages committed, want %d", calls, n)
	}
	if len(commits) >= n {
		t.Fatalf("%d commits for %d concurrent messages: each paid its own fsync", len(commits), n)
	}
	t.Logf("%d messages in %d commits", n, len(commits))
}

// TestFileStoreModesAndLock: the directory is 0700, the file and the
// journal 0600 (also ones that existed with a looser mode), and a second process (here, a
// second open) is told the file is in use instead of waiting forever.
func TestFileStoreModesAndLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "queue")
	s, err := OpenFile(FileOptions{Dir: dir})
	must(t, err)
	fi, err := os.Stat(dir)
	must(t, err)
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("directory mode %v, want 0700", fi.Mode().Perm())
	}
	if _, err := OpenFile(FileOptions{Dir: dir, LockTimeout: 50 * time.Millisecond}); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second open: %v, want in use", err)
	}
	must(t, s.Close())
	for _, name := range []string{FileName, JournalName} {
		must(t, os.Chmod(filepath.Join(dir, name), 0o644))
	}
	s, err = OpenFile(FileOptions{Dir: dir})
	must(t, err)
	defer s.Close()
	for _, name := range []string{FileName, JournalName} {
		fi, err = os.Stat(filepath.Join(dir, name))
		must(t, err)
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
}

// TestFileStoreReopen: after a restart every pending message is due
// again (one whose attempt was in flight too), a dead letter stays dead,
// and the byte count is rebuilt.
func TestFileStoreReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenFile(FileOptions{Dir: dir})
	must(t, err)
	a, b, c := msg("gh", t0, "a"), msg("gh", t0, "b"), msg("gh", t0, "c")
	for _, m := range []*Message{a, b, c} {
		must(t, s.Add(context.Background(), m))
	}
	leased := lease(t, s, "gh", t0, 2)
	leased[1].Reason = "refused"
	must(t, s.Bury(context.Background(), leased[1]))
	before, _ := s.Stats(context.Background())
	must(t, s.Close())

	s, err = OpenFile(FileOptions{Dir: dir})
	must(t, err)
	defer s.Close()
	after, _ := s.Stats(context.Background())
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("stats before %+v, after reopen %+v", before, after)
	}
	got := lease(t, s, "gh", t0, 10)
	if len(got) != 2 || got[0].ID == leased[1].ID || got[1].ID == leased[1].ID {
		t.Fatalf("after reopen leased %v; want the two pending (%s was buried)", ids(got), leased[1].ID)
	}
}

const crashChildEnv = "TOKENGATE_QUEUE_CRASH_DIR"

// crashChild enqueues from 8 goroutines and prints each id once Add has
// returned (acknowledged), until it is killed (or after 20000 messages).
func crashChild() {
	s, err := OpenFile(FileOptions{Dir: os.Getenv(crashChildEnv)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2500 {
				m := msg("gh", time.Now(), fmt.Sprintf("%d-%d", g, i))
				if err := s.Add(context.Background(), m); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintln(out, m.ID)
				out.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	os.Exit(0)
}

// TestCrashLosesNoAcknowledgedMessage: a process enqueueing at full speed
// is killed with SIGKILL after acknowledging K messages; reopened, the
// store holds every one of them.
func TestCrashLosesNoAcknowledgedMessage(t *testing.T) {
	const k = 300
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	must(t, err)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	must(t, cmd.Start())
	acked := make(chan []string, 1)
	go func() {
		var got []string
		sc := bufio.NewScanner(stdout)
		for sc.Scan() && len(got) < k {
			got = append(got, sc.Text())
		}
		acked <- got
	}()
	var got []string
	select {
	case got = <-acked:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("the child did not acknowledge %d messages within 60s; stderr: %s", k, stderr.String())
	}
	must(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	if len(got) < k {
		t.Fatalf("child acknowledged only %d messages; stderr: %s", len(got), stderr.String())
	}
	s, err := OpenFile(FileOptions{Dir: dir})
	must(t, err)
	defer s.Close()
	for _, id := range got {
		if _, err := s.Get(context.Background(), id); err != nil {
			t.Fatalf("acknowledged message %s after kill -9: %v", id, err)
		}
	}
	st, _ := s.Stats(context.Background())
	t.Logf("%d acknowledged before the kill, %+v stored after", len(got), st)
}

// TestFileStoreRefusesAnUnsafePlace: a store directory every local user
// may write into (a planted database of forged messages) and a store file
// that is a symbolic link (the gate would write where it points) are
// refused with a message that says what to do.
func TestFileStoreRefusesAnUnsafePlace(t *testing.T) {
	open := t.TempDir()
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFile(FileOptions{Dir: open}); err == nil || !strings.Contains(err.Error(), "chmod o-w") {
		t.Fatalf("a world-writable directory: %v, want refused", err)
	}
	for _, name := range []string{FileName, JournalName} {
		linked := t.TempDir()
		target := filepath.Join(t.TempDir(), "elsewhere")
		if err := os.WriteFile(target, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(linked, name)); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenFile(FileOptions{Dir: linked}); err == nil || !strings.Contains(err.Error(), "not a plain file") {
			t.Fatalf("a symbolic link as %s: %v, want refused", name, err)
		}
		if _, err := InspectFile(linked, time.Second); err == nil || !strings.Contains(err.Error(), "not a plain file") {
			t.Fatalf("check: a symbolic link as %s: %v, want refused", name, err)
		}
		if fi, err := os.Stat(target); err != nil || fi.Size() != 0 || fi.Mode().Perm() != 0o644 {
			t.Fatalf("the link's target was written or changed: %v %v", fi, err)
		}
	}
}

// TestFileStoreAcknowledgesNothingOnceItsFileIsGone: once the store's
// file is removed or replaced under the running gate, a write is
// refused (503 for the sender) instead of acknowledged into a file no
// restart will open.
func TestFileStoreAcknowledgesNothingOnceItsFileIsGone(t *testing.T) {
	cases := []struct {
		name string
		pull func(t *testing.T, dir string)
	}{
		{"directory removed", func(t *testing.T, dir string) { must(t, os.RemoveAll(dir)) }},
		{"file moved away", func(t *testing.T, dir string) {
			must(t, os.Rename(filepath.Join(dir, FileName), filepath.Join(dir, "elsewhere.db")))
		}},
		{"file replaced", func(t *testing.T, dir string) {
			must(t, os.WriteFile(filepath.Join(dir, "new.db"), nil, 0o600))
			must(t, os.Rename(filepath.Join(dir, "new.db"), filepath.Join(dir, FileName)))
		}},
		{"journal moved away", func(t *testing.T, dir string) {
			must(t, os.Rename(filepath.Join(dir, JournalName), filepath.Join(dir, "elsewhere.journal")))
		}},
		{"journal replaced by a link to itself", func(t *testing.T, dir string) {
			must(t, os.Rename(filepath.Join(dir, JournalName), filepath.Join(dir, "real.journal")))
			must(t, os.Symlink("real.journal", filepath.Join(dir, JournalName)))
		}},
		{"journal replaced", func(t *testing.T, dir string) {
			must(t, os.WriteFile(filepath.Join(dir, "new.journal"), nil, 0o600))
			must(t, os.Rename(filepath.Join(dir, "new.journal"), filepath.Join(dir, JournalName)))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "queue")
			s, err := OpenFile(FileOptions{Dir: dir})
			must(t, err)
			defer s.Close()
			must(t, s.Add(context.Background(), msg("gh", t0, "before")))
			tc.pull(t, dir)
			if err := s.Add(context.Background(), msg("gh", t0, "after")); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("a write after the store's file went: %v, want ErrUnavailable (nothing acknowledged)", err)
			}
		})
	}
}
