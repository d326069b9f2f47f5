package queue

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestFileCheckWritesInsideTheStore: the file store's check is a write in
// its own file, so it fails while the store's commits fail (a full disk)
// and passes again once they go through, and it leaves no file beside the
// store (a full disk that a drained queue left free pages in is ready
// again; a check needing a new file would stay unready until an operator
// freed space: a second outside attack).
func TestFileCheckWritesInsideTheStore(t *testing.T) {
	dir := t.TempDir()
	s, full := fillingStore(t, dir)
	before := names(t, dir)
	for _, c := range []struct {
		name string
		full bool
	}{{"fine", false}, {"full", true}, {"freed", false}} {
		full.Store(c.full)
		err := s.Check(context.Background())
		if c.full != (err != nil) || (err != nil && !errors.Is(err, ErrUnavailable)) {
			t.Fatalf("%s: Check = %v, want failing with ErrUnavailable: %v", c.name, err, c.full)
		}
	}
	if after := names(t, dir); !slices.Equal(before, after) {
		t.Fatalf("the store's directory went from %v to %v: a check made a file", before, after)
	}
}

// TestFileCheckOnAHungDiskIsBoundedAndSingle: while the disk does not
// answer, a check returns when its context ends, the next check says the
// last one is still waiting (one write held, not one per check), and once
// the disk answers the store is ready again.
func TestFileCheckOnAHungDiskIsBoundedAndSingle(t *testing.T) {
	release := make(chan struct{})
	var hung atomic.Bool
	s, err := OpenFile(FileOptions{Dir: t.TempDir(), fault: func() error {
		if hung.Load() {
			<-release
		}
		return nil
	}})
	must(t, err)
	t.Cleanup(func() { s.Close() })
	hung.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	returned := make(chan error, 1)
	go func() { returned <- s.Check(ctx) }()
	select {
	case err := <-returned:
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("hung disk: Check = %v, want ErrUnavailable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("hung disk: Check did not return when its 50ms context ended (10s)")
	}
	if err := s.Check(context.Background()); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "still waiting") {
		t.Fatalf("second check on a hung disk: %v, want the last one still waiting", err)
	}
	hung.Store(false)
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for err := s.Check(context.Background()); err != nil; err = s.Check(context.Background()) {
		if time.Now().After(deadline) {
			t.Fatalf("the disk answers again, the check still fails (10s): %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	must(t, err)
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// TestFileCheckAfterAFailedWriteNeedsRoomForIt: once a message's write
// failed (a full disk), a check passes only by writing as much as that
// message, up to ProbeMax: a disk with room for the check's page but not
// for a small message was ready and unready in turn (an outside attack),
// and a message larger than the disk must not keep the gate unready (and
// refusing every sender) while smaller ones fit (two more). The probe is
// removed once it fit, and the next check is small again.
func TestFileCheckAfterAFailedWriteNeedsRoomForIt(t *testing.T) {
	for _, c := range []struct {
		name     string
		failed   int
		min, max int64 // page bytes the first check after it allocates
	}{
		{"a small message", 40 << 10, 40 << 10, ProbeMax + 64<<10},
		{"a message larger than ProbeMax", 1 << 20, ProbeMax, ProbeMax + 64<<10},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, full := fillingStore(t, t.TempDir())
			full.Store(true)
			if err := s.Add(context.Background(), msg("gh", time.Now(), strings.Repeat("x", c.failed))); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Add on a full disk = %v, want ErrUnavailable", err)
			}
			full.Store(false)
			for _, k := range []struct {
				name     string
				min, max int64
			}{{"after the failed write", c.min, c.max}, {"once it fit", 0, 32 << 10}} {
				before := s.db.Stats()
				must(t, s.Check(context.Background()))
				after := s.db.Stats()
				d := after.Sub(&before)
				if got := d.TxStats.GetPageAlloc(); got < k.min || got > k.max {
					t.Fatalf("%s: the check allocated %d bytes of pages, want %d..%d", k.name, got, k.min, k.max)
				}
			}
			must(t, s.db.View(func(tx *bolt.Tx) error {
				if tx.Bucket(bucketHealth) != nil {
					t.Error("the probe stayed in the store after the check")
				}
				return nil
			}))
		})
	}
}

// TestFileCheckKeepsAFailureNotedDuringItsProbe: a larger write that fails
// while a check's probe commits is not forgotten by that check's success:
// the next check asks room for it.
func TestFileCheckKeepsAFailureNotedDuringItsProbe(t *testing.T) {
	var s *FileStore
	var during atomic.Bool
	s, err := OpenFile(FileOptions{Dir: t.TempDir(), fault: func() error {
		if during.CompareAndSwap(true, false) {
			s.noteUnfit(8 << 10) // a larger message failed meanwhile
		}
		return nil
	}})
	must(t, err)
	t.Cleanup(func() { s.Close() })
	s.noteUnfit(1 << 10)
	during.Store(true)
	must(t, s.Check(context.Background()))
	if got := s.unfit.Load(); got != 8<<10 {
		t.Fatalf("after the check: room asked for %d bytes, want the later failure's 8192", got)
	}
	must(t, s.Check(context.Background()))
	if got := s.unfit.Load(); got != 0 {
		t.Fatalf("after a second check with room: %d, want 0", got)
	}
}
