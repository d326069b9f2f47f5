package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hungStore is a file store whose commits wait for release, as on a
// disk that does not answer; held counts the commits waiting.
func hungStore(t *testing.T) (s *FileStore, held *atomic.Int64, release func()) {
	t.Helper()
	gate := make(chan struct{})
	held = &atomic.Int64{}
	var once sync.Once
	s, err := OpenFile(FileOptions{Dir: t.TempDir(), fault: func() error {
		held.Add(1)
		<-gate
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(func() { release(); s.Close() })
	return s, held, release
}

func pendingCount(t *testing.T, s *FileStore) int {
	t.Helper()
	ms, err := s.List(context.Background(), "gh", Pending, 0)
	if err != nil {
		t.Fatal(err)
	}
	return len(ms)
}

// TestFileStoreLetsAGoneSenderGo: while the disk hangs, a sender whose
// request ends before its write was taken is let go with nothing stored;
// the write the hung commit holds is stored once the disk answers.
func TestFileStoreLetsAGoneSenderGo(t *testing.T) {
	s, held, release := hungStore(t)
	first := make(chan error, 1)
	go func() { first <- s.Add(context.Background(), msg("gh", time.Now(), "taken")) }()
	waitFor(t, "the first write's commit is held", func() bool { return held.Load() == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan error, 1)
	go func() { gone <- s.Add(ctx, msg("gh", time.Now(), "gone")) }()
	time.Sleep(20 * time.Millisecond) // it waits for the committer (not required for the check below)
	cancel()
	select {
	case err := <-gone:
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
			t.Fatalf("a gone sender's Add = %v, want context.Canceled, not ErrUnavailable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a gone sender's Add still waits on the hung disk after 10 s")
	}
	release()
	if err := <-first; err != nil {
		t.Fatalf("the taken write: %v", err)
	}
	if n := pendingCount(t, s); n != 1 {
		t.Fatalf("%d messages stored, want 1 (the taken one; the gone sender's was never written)", n)
	}
	// The disk answers again: a sender whose context ended is stored.
	if err := s.Add(ctx, msg("gh", time.Now(), "after")); err != nil {
		t.Fatalf("Add with an ended context once the disk answers = %v, want stored", err)
	}
	if n := pendingCount(t, s); n != 2 {
		t.Fatalf("%d messages stored, want 2", n)
	}
}

// TestFileStoreStoresASenderWhoseContextEndedWhileTheDiskAnswers: Go's
// server ends a request's context when its client half-closes after the
// whole request, and that client still reads its answer; with a disk
// that answers, its message is stored, not refused as gone (an outside
// attack: 193 of 200 such GitHub deliveries got 503).
func TestFileStoreStoresASenderWhoseContextEndedWhileTheDiskAnswers(t *testing.T) {
	s, err := OpenFile(FileOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	const n = 20
	for i := range n {
		if err := s.Add(ctx, msg("gh", time.Now(), fmt.Sprint("m", i))); err != nil {
			t.Fatalf("Add %d with an ended context = %v, want stored", i, err)
		}
	}
	if got := pendingCount(t, s); got != n {
		t.Fatalf("%d messages stored, want %d", got, n)
	}
}

// TestFileStoreBoundsTheWritesWaitingForItsDisk: while the disk hangs,
// at most maxWaitingAdds new messages wait; the next sender gets
// ErrUnavailable at once (503, nothing stored) instead of holding its
// connection; once the disk answers every waiting one is stored.
func TestFileStoreBoundsTheWritesWaitingForItsDisk(t *testing.T) {
	s, held, release := hungStore(t)
	errs := make(chan error, maxWaitingAdds)
	for range maxWaitingAdds {
		go func() { errs <- s.Add(context.Background(), msg("gh", time.Now(), "x")) }()
	}
	waitFor(t, "every write waits", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return held.Load() == 1 && s.waiting == maxWaitingAdds
	})
	done := make(chan error, 1)
	go func() { done <- s.Add(context.Background(), msg("gh", time.Now(), "one too many")) }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("one more Add = %v, want ErrUnavailable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("one more Add waits too, past %d waiting", maxWaitingAdds)
	}
	release()
	for range maxWaitingAdds {
		if err := <-errs; err != nil {
			t.Fatalf("a waiting write: %v", err)
		}
	}
	if n := pendingCount(t, s); n != maxWaitingAdds {
		t.Fatalf("%d messages stored, want %d", n, maxWaitingAdds)
	}
}
