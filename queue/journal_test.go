package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// jrec is one record of a hand-made journal.
type jrec struct {
	lap, seq uint64
	value    []byte // nil: a real message's
}

// diskFull is a fault that fails as a full disk does while full is set.
func diskFull(full *atomic.Bool) func() error {
	return func() error {
		if full.Load() {
			return errors.New("no space left on device")
		}
		return nil
	}
}

// seqID is a valid message id that names seq.
func seqID(seq uint64) string { return fmt.Sprintf("%028x", seq) }

func journalBytes(t *testing.T, recs ...jrec) []byte {
	t.Helper()
	var b []byte
	for _, r := range recs {
		v := r.value
		if v == nil {
			m := msg("gh", t0, fmt.Sprint(r.seq))
			p, err := encodePayload(m)
			must(t, err)
			v = joinValue(encodeRecord(record{Route: m.Route, Received: m.Received, Size: int64(len(p)), Progress: m.Progress}), p)
		}
		b = appendJournalRecord(b, r.lap, &journalRecord{seq: r.seq, id: seqID(r.seq), value: v})
	}
	return b
}

// TestScanJournalStopsWhereNoSenderWasAnswered: a scan hands over the
// records of the head's lap in rising order and stops, without error, at
// what a crash or an earlier lap left: a torn record, a flipped byte, the
// zeros ahead, a record of an earlier lap, the leftover of a failed
// group (a lower number), a length past the file. A record whose
// checksum holds but whose body does not decode is an error.
func TestScanJournalStopsWhereNoSenderWasAnswered(t *testing.T) {
	a := journalBytes(t, jrec{lap: 7, seq: 1}, jrec{lap: 7, seq: 2}, jrec{lap: 7, seq: 3})
	two := len(journalBytes(t, jrec{lap: 7, seq: 1}, jrec{lap: 7, seq: 2}))
	flipped := bytes.Clone(a)
	flipped[len(flipped)-3] ^= 1
	long := bytes.Clone(a[:two])
	long = append(long, journalBytes(t, jrec{lap: 7, seq: 3})...)
	long[two+4] = 0xff // the third record's length: past the file
	cases := []struct {
		name  string
		file  []byte
		after uint64
		want  []uint64
		err   error
	}{
		{"whole, then zeros", append(bytes.Clone(a), make([]byte, 100)...), 0, []uint64{1, 2, 3}, nil},
		{"torn last record", a[:len(a)-5], 0, []uint64{1, 2}, nil},
		{"a flipped byte in the last", flipped, 0, []uint64{1, 2}, nil},
		{"a length past the file", long, 0, []uint64{1, 2}, nil},
		{"only what is past applied", a, 2, []uint64{3}, nil},
		{"a record up to applied is skipped by its head", func() []byte {
			b := bytes.Clone(a)
			b[two-3] ^= 1 // the second record's body
			return b
		}(), 2, []uint64{3}, nil},
		{"an earlier lap after this one", append(journalBytes(t, jrec{lap: 9, seq: 8}, jrec{lap: 9, seq: 9}), a[two:]...), 0, []uint64{8, 9}, nil},
		{"a failed group's leftover", append(journalBytes(t, jrec{lap: 7, seq: 5}, jrec{lap: 7, seq: 6}), journalBytes(t, jrec{lap: 7, seq: 4})...), 0, []uint64{5, 6}, nil},
		{"the same number twice", journalBytes(t, jrec{lap: 7, seq: 5}, jrec{lap: 7, seq: 5}), 0, []uint64{5}, nil},
		{"zeros only", make([]byte, 4096), 0, nil, nil},
		{"a valid checksum on a body that does not decode", journalBytes(t, jrec{lap: 7, seq: 1}, jrec{lap: 7, seq: 2, value: []byte("junk")}), 0, []uint64{1}, errJournalCorrupt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []uint64
			_, err := scanJournal(bytes.NewReader(c.file), int64(len(c.file)), c.after, func(r journalRecord) error {
				got = append(got, r.seq)
				if want := seqID(r.seq); r.id != want {
					t.Errorf("record %d has id %q, want %q", r.seq, r.id, want)
				}
				return nil
			})
			if !errors.Is(err, c.err) || (c.err == nil && err != nil) {
				t.Fatalf("scan error %v, want %v", err, c.err)
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("scanned %v, want %v", got, c.want)
			}
		})
	}
}

// crashImage copies the store's files in dir as a crash would leave
// them (no commit of the store file runs: the caller holds them) into a
// new directory.
func crashImage(t *testing.T, dir string) string {
	t.Helper()
	img := t.TempDir()
	for _, name := range []string{FileName, JournalName} {
		src, err := os.Open(filepath.Join(dir, name))
		must(t, err)
		dst, err := os.OpenFile(filepath.Join(img, name), os.O_CREATE|os.O_WRONLY, 0o600)
		must(t, err)
		_, err = io.Copy(dst, src)
		must(t, err)
		src.Close()
		must(t, dst.Close())
	}
	return img
}

// heldApply opens a file store in dir whose commits of the store file
// wait while held (the journal's do not): what senders are told is then
// only in the journal. hold(true) returns once a commit waits, so no
// commit of the store file runs until hold(false).
func heldApply(t *testing.T, dir string, journalMax int64) (*FileStore, func(bool)) {
	t.Helper()
	var mu sync.Mutex
	held, parked := false, 0
	cond := sync.NewCond(&mu)
	s, err := OpenFile(FileOptions{Dir: dir, journalMax: journalMax, applyFault: func() error {
		mu.Lock()
		for held {
			parked++
			cond.Broadcast()
			cond.Wait()
			parked--
		}
		mu.Unlock()
		return nil
	}})
	must(t, err)
	hold := func(h bool) {
		mu.Lock()
		held = h
		cond.Broadcast()
		mu.Unlock()
		if !h {
			return
		}
		go s.commits.flush() // a commit that waits until hold(false)
		mu.Lock()
		for parked == 0 {
			cond.Wait()
		}
		mu.Unlock()
	}
	t.Cleanup(func() { hold(false); s.Close() })
	return s, hold
}

func pendingIDs(t *testing.T, s *FileStore) []string {
	t.Helper()
	ms, err := s.List(context.Background(), "gh", Pending, 0)
	must(t, err)
	out := ids(ms)
	slices.Sort(out)
	return out
}

// TestFileStoreReplaysItsJournalAfterACrash: messages a sender was told
// of while the store file had not taken them (held) are in a crash's
// image of the files; opening it writes them into the store file, once
// (a second open finds the same), and check's read-only summary counts
// them before that open. Messages delivered before the crash do not come
// back, also after the journal started again from its first byte (a
// small journal: several laps).
func TestFileStoreReplaysItsJournalAfterACrash(t *testing.T) {
	for _, journalMax := range []int64{0, 4 << 10} {
		t.Run(fmt.Sprint("journal max ", journalMax), func(t *testing.T) {
			dir := t.TempDir()
			s, hold := heldApply(t, dir, journalMax)
			ctx := context.Background()
			var delivered, kept []string
			for i := range 60 { // 60 of about 400 bytes: several laps of 4 KiB
				m := msg("gh", t0, fmt.Sprintf("early-%02d-%0300d", i, 0))
				must(t, s.Add(ctx, m))
				if i%2 == 0 {
					delivered = append(delivered, m.ID)
				} else {
					kept = append(kept, m.ID)
				}
			}
			for _, m := range lease(t, s, "gh", t0, 100) {
				if slices.Contains(delivered, m.ID) {
					must(t, s.Ack(ctx, m))
				} else {
					m.Next = t0
					must(t, s.Retry(ctx, m))
				}
			}
			// The journal starts a lap (everything before it is in the store
			// file) so that what follows fits in it while the store file is
			// held: a lap's start waits for the store file.
			must(t, s.commits.flush())
			must(t, s.j.newLap())
			hold(true)
			var wg sync.WaitGroup
			var mu sync.Mutex
			for i := range 8 {
				wg.Go(func() {
					m := msg("gh", t0, fmt.Sprintf("late-%02d", i))
					must(t, s.Add(ctx, m))
					mu.Lock()
					kept = append(kept, m.ID)
					mu.Unlock()
				})
			}
			wg.Wait()
			img := crashImage(t, dir)
			hold(false)
			slices.Sort(kept)

			sum, err := InspectFile(img, time.Second)
			must(t, err)
			if len(sum.Stats) != 1 || sum.Stats[0].Pending != int64(len(kept)) {
				t.Fatalf("check's summary of the crash image: %+v, want %d pending", sum.Stats, len(kept))
			}
			for range 2 {
				r, err := OpenFile(FileOptions{Dir: img, journalMax: journalMax})
				must(t, err)
				if got := pendingIDs(t, r); !slices.Equal(got, kept) {
					t.Fatalf("after the crash: %d pending %v, want %d %v", len(got), got, len(kept), kept)
				}
				must(t, r.Close())
			}
		})
	}
}

// TestFileStoreKeepsWhatItAcknowledgedWhileTheStoreFileFails: while the
// store file cannot be written (a full disk), the message the journal
// already acknowledged stays (in memory and in the journal) and new
// senders are refused (503, nothing acknowledged the store file may never
// hold); once it can be written again, the first message is in it and
// new ones are taken.
func TestFileStoreKeepsWhatItAcknowledgedWhileTheStoreFileFails(t *testing.T) {
	dir := t.TempDir()
	var full atomic.Bool
	s, err := OpenFile(FileOptions{Dir: dir, applyFault: diskFull(&full)})
	must(t, err)
	defer s.Close()
	ctx := context.Background()
	full.Store(true)
	first := msg("gh", t0, "first")
	must(t, s.Add(ctx, first))
	waitFor(t, "the store file's commit fails", func() bool { _, _, err := s.apply.state(); return err != nil })
	if err := s.Add(ctx, msg("gh", t0, "refused")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("an Add while the store file cannot be written: %v, want ErrUnavailable", err)
	}
	full.Store(false)
	last := msg("gh", t0, "last")
	must(t, s.Add(ctx, last))
	must(t, s.Close())
	r, err := OpenFile(FileOptions{Dir: dir})
	must(t, err)
	defer r.Close()
	want := []string{first.ID, last.ID}
	slices.Sort(want)
	if got := pendingIDs(t, r); !slices.Equal(got, want) {
		t.Fatalf("stored %v, want %v (the acknowledged ones, not the refused one)", got, want)
	}
}

// TestFileStoreDeliveredMessageDoesNotComeBackFromTheJournal: a message
// delivered soon after it was acknowledged (its journal record perhaps
// never written into the store file) stays delivered after a crash:
// opening the crash's image does not bring it back from the journal,
// while the message not yet delivered is there.
func TestFileStoreDeliveredMessageDoesNotComeBackFromTheJournal(t *testing.T) {
	dir := t.TempDir()
	s, hold := heldApply(t, dir, 0)
	ctx := context.Background()
	delivered, kept := msg("gh", t0, "delivered"), msg("gh", t0, "kept")
	must(t, s.Add(ctx, delivered))
	must(t, s.Add(ctx, kept))
	for _, m := range lease(t, s, "gh", t0, 2) {
		if m.ID == delivered.ID {
			must(t, s.Ack(ctx, m))
		}
	}
	hold(true) // no commit of the store file runs while the image is taken
	img := crashImage(t, dir)
	hold(false)
	r, err := OpenFile(FileOptions{Dir: img})
	must(t, err)
	defer r.Close()
	if got := pendingIDs(t, r); !slices.Equal(got, []string{kept.ID}) {
		t.Fatalf("after the crash: %v, want only %s (%s was delivered)", got, kept.ID, delivered.ID)
	}
}

// TestFileStoreReadsAMessageOnlyInTheJournal: a message too large to be
// kept in memory for its first lease, leased (and shown, and listed) at
// once after its Add, while the store file has not taken it yet, is read
// whole: the read waits for the store file instead of finding nothing
// (the lease would hold it forever).
func TestFileStoreReadsAMessageOnlyInTheJournal(t *testing.T) {
	s, err := OpenFile(FileOptions{Dir: t.TempDir()})
	must(t, err)
	defer s.Close()
	ctx := context.Background()
	big, small := msg("gh", t0, strings.Repeat("b", hotBudget+1)), msg("gh", t0, "small")
	must(t, s.Add(ctx, big))
	must(t, s.Add(ctx, small))
	ms := lease(t, s, "gh", t0, 2)
	if len(ms) != 2 {
		t.Fatalf("leased %d messages at once after their Adds, want 2", len(ms))
	}
	for _, m := range ms {
		if m.ID == big.ID && !bytes.Equal(m.Body, big.Body) {
			t.Fatalf("the large message leased with %d bytes, want %d", len(m.Body), len(big.Body))
		}
	}
	other := msg("other", t0, "shown")
	must(t, s.Add(ctx, other))
	if got, err := s.Get(ctx, other.ID); err != nil || !bytes.Equal(got.Body, other.Body) {
		t.Fatalf("show at once: %v, want the message whole", err)
	}
	third := msg("third", t0, "listed")
	must(t, s.Add(ctx, third))
	if ms, err := s.List(ctx, "third", Pending, 0); err != nil || len(ms) != 1 {
		t.Fatalf("list at once: %d messages, %v; want 1", len(ms), err)
	}
}

// TestFileStoreKeepsSpaceFree: with less than DiskReserve free on its
// disk, the store refuses new messages (503) and reports itself
// unavailable, so that deliveries can still be recorded and removed; with
// room again it takes them.
func TestFileStoreKeepsSpaceFree(t *testing.T) {
	var free atomic.Int64
	free.Store(DiskReserve - 1<<20)
	s, err := OpenFile(FileOptions{Dir: t.TempDir(), freeSpace: free.Load})
	must(t, err)
	defer s.Close()
	ctx := context.Background()
	if err := s.Add(ctx, msg("gh", t0, "refused")); !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "kept free") {
		t.Fatalf("Add with %d bytes free: %v, want ErrFull (kept free)", free.Load(), err)
	}
	if err := s.Check(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Check with %d bytes free: %v, want ErrUnavailable", free.Load(), err)
	}
	free.Store(DiskReserve + 1<<20)
	must(t, s.Add(ctx, msg("gh", t0, "taken")))
	must(t, s.Check(ctx))
	if n := len(pendingIDs(t, s)); n != 1 {
		t.Fatalf("%d stored, want 1", n)
	}
}

// drainedStore opens a file store whose disk's free space is what free
// holds (plenty, at first) and stores and delivers n messages of size
// bytes, so that queue.db holds their pages free.
func drainedStore(t *testing.T, n, size int) (*FileStore, *atomic.Int64) {
	t.Helper()
	free := new(atomic.Int64)
	free.Store(1 << 40)
	s, err := OpenFile(FileOptions{Dir: t.TempDir(), freeSpace: free.Load})
	must(t, err)
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	var ms []*Message
	for i := range n {
		m := msg("gh", t0, fmt.Sprintf("%d-%s", i, strings.Repeat("x", size)))
		must(t, s.Add(ctx, m))
		ms = append(ms, m)
	}
	must(t, s.commits.flush())
	for _, m := range ms {
		must(t, s.Ack(ctx, m))
	}
	return s, free
}

// TestFileStoreCountsItsFreePagesAsRoom: a queue that took its disk
// below the reserve and then drained keeps the pages it freed (queue.db
// never shrinks); new messages reuse them, so they count as room: the
// gate stayed unready for good, with an empty queue, even after a
// restart (an outside attack).
func TestFileStoreCountsItsFreePagesAsRoom(t *testing.T) {
	s, free := drainedStore(t, 64, 64<<10) // 4 MiB of free pages
	ctx := context.Background()
	free.Store(DiskReserve - 1<<20) // the disk is below the reserve; queue.db's free pages are not
	if err := s.Add(ctx, msg("gh", t0, "small")); err != nil {
		t.Fatalf("Add with %d MiB free in queue.db's pages: %v, want stored", int64(s.db.Stats().FreePageN)*s.pageSize>>20, err)
	}
	must(t, s.Check(ctx))
}

// TestFileStoreDrainsWhileItsJournalRecordsDoNotFit: while the journal's
// records cannot be written into the store file (a full disk: recordFault),
// the messages it already holds are still leased, delivered and removed
// (a removal may free the pages the records need), and those only in the
// journal wait; once the records fit, they are leased too.
func TestFileStoreDrainsWhileItsJournalRecordsDoNotFit(t *testing.T) {
	var full atomic.Bool
	s, err := OpenFile(FileOptions{Dir: t.TempDir(), recordFault: diskFull(&full)})
	must(t, err)
	defer s.Close()
	ctx := context.Background()
	held := msg("gh", t0, strings.Repeat("h", hotBudget+1)) // too large to be kept in memory: leased from the file
	must(t, s.Add(ctx, held))
	must(t, s.commits.flush())
	full.Store(true)
	waiting := msg("gh", t0, strings.Repeat("w", hotBudget+1))
	must(t, s.Add(ctx, waiting))
	ms, err := s.Lease(ctx, "gh", t0, 2)
	if err != nil || len(ms) != 1 || ms[0].ID != held.ID {
		t.Fatalf("lease while the journal's record does not fit: %v %v, want only the message the store file holds", ids(ms), err)
	}
	time.Sleep(2 * applyAfter) // the waiting record is old enough for every commit to write it first
	must(t, s.Ack(ctx, ms[0]))
	if ok, _ := s.Has(ctx, held.ID); ok {
		t.Fatal("the delivered message is still stored")
	}
	full.Store(false)
	ms = lease(t, s, "gh", time.Now().Add(time.Minute), 2) // due again writeFailedRetry after its failed lease
	if len(ms) != 1 || ms[0].ID != waiting.ID || len(ms[0].Body) != len(waiting.Body) {
		t.Fatalf("once the record fits: leased %v, want %s whole", ids(ms), waiting.ID)
	}
}

// TestFileStoreOpensWhenItsJournalDoesNotFit: a crash left messages only
// in the journal, and the store file cannot take them when the store is
// opened (a full disk): the store opens anyway (a gate that refused to
// start took its direct routes and Token URL down too) with them pending
// in memory, refuses new messages, and writes them once it can.
func TestFileStoreOpensWhenItsJournalDoesNotFit(t *testing.T) {
	dir := t.TempDir()
	s, hold := heldApply(t, dir, 0)
	ctx := context.Background()
	var want []string
	for i := range 5 {
		m := msg("gh", t0, fmt.Sprint("before-", i))
		must(t, s.Add(ctx, m))
		want = append(want, m.ID)
	}
	must(t, s.commits.flush())
	hold(true)
	for i := range 5 {
		m := msg("gh", t0, fmt.Sprint("journal-only-", i))
		must(t, s.Add(ctx, m))
		want = append(want, m.ID)
	}
	img := crashImage(t, dir)
	hold(false)
	slices.Sort(want)

	var full atomic.Bool
	full.Store(true)
	r, err := OpenFile(FileOptions{Dir: img, applyFault: diskFull(&full)})
	if err != nil {
		t.Fatalf("opening with a journal the store file cannot take: %v, want open", err)
	}
	defer r.Close()
	if got := pendingIDs(t, r); !slices.Equal(got, want) {
		t.Fatalf("open on a full disk: %d pending listed, want %d", len(got), len(want))
	}
	if st, _ := r.Stats(ctx); len(st) != 1 || st[0].Pending != int64(len(want)) {
		t.Fatalf("open on a full disk: %+v, want %d pending", st, len(want))
	}
	if err := r.Add(ctx, msg("gh", t0, "refused")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Add while the journal's records do not fit: %v, want ErrUnavailable", err)
	}
	full.Store(false)
	waitFor(t, "the journal's records written", func() bool { return r.apply.pending() == 0 })
	last := msg("gh", t0, "after")
	must(t, r.Add(ctx, last))
	want = append(want, last.ID)
	slices.Sort(want)
	must(t, r.Close())
	r, err = OpenFile(FileOptions{Dir: img})
	must(t, err)
	if got := pendingIDs(t, r); !slices.Equal(got, want) {
		t.Fatalf("reopened: %d pending, want %d", len(got), len(want))
	}
	must(t, r.Close())
}

// TestFileStoreNoticesItsJournalCut: a journal cut shorter under the
// running store (same file: a rename would be noticed as a replacement)
// would lose its acknowledged records at the next crash: new messages
// are refused and the store reports itself unavailable.
func TestFileStoreNoticesItsJournalCut(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenFile(FileOptions{Dir: dir})
	must(t, err)
	defer s.Close()
	ctx := context.Background()
	must(t, s.Add(ctx, msg("gh", t0, "before")))
	must(t, os.Truncate(filepath.Join(dir, JournalName), 0))
	if err := s.Add(ctx, msg("gh", t0, "after")); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "cut") {
		t.Fatalf("Add after the journal was cut: %v, want ErrUnavailable", err)
	}
	if err := s.Check(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Check after the journal was cut: %v, want ErrUnavailable", err)
	}
}

// TestFileStoreWantsDiskForLargeMessages: free pages in queue.db count
// as room for small messages, but a large group must fit on the disk
// itself (bbolt stores a large value in contiguous pages and grows its
// file rather than use scattered free ones: an outside attack filled the
// disk to 0 so).
func TestFileStoreWantsDiskForLargeMessages(t *testing.T) {
	s, free := drainedStore(t, 96, 256<<10) // 24 MiB of free pages
	ctx := context.Background()
	free.Store(DiskReserve/2 + 1<<20) // room with the free pages: past the reserve; the disk alone: not for 2 MiB
	if err := s.Add(ctx, msg("gh", t0, strings.Repeat("L", 2<<20))); !errors.Is(err, ErrFull) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("a 2 MiB message with %d MiB free on the disk: %v, want ErrFull (this message; the store is not failing)", free.Load()>>20, err)
	}
	free.Store(DiskReserve - 1<<20)
	must(t, s.Add(ctx, msg("gh", t0, "small"))) // small: the free pages take it
}

// TestFileStoreCountsWhatQueueDBHasNotTakenYet: the room a new group
// needs is counted after the groups the journal took that queue.db does
// not hold yet (five 9 MB groups, each checked against the disk alone,
// filled it to 0 in an outside attack).
func TestFileStoreCountsWhatQueueDBHasNotTakenYet(t *testing.T) {
	var free atomic.Int64
	free.Store(1 << 40)
	var held atomic.Bool
	release := make(chan struct{})
	s, err := OpenFile(FileOptions{Dir: t.TempDir(), freeSpace: free.Load, applyFault: func() error {
		if held.Load() {
			<-release
		}
		return nil
	}})
	must(t, err)
	defer func() { close(release); s.Close() }()
	ctx := context.Background()
	free.Store(DiskReserve + 8<<20) // room for about 8 MiB of new messages
	held.Store(true)                // queue.db takes none of them meanwhile
	stored := 0
	for i := range 6 { // 12 MiB: under maxUnapplied, which would wait for queue.db
		err := s.Add(ctx, msg("gh", t0, fmt.Sprintf("%d-%s", i, strings.Repeat("x", 2<<20))))
		if errors.Is(err, ErrFull) {
			break
		}
		must(t, err)
		stored++
	}
	if stored > 4 {
		t.Fatalf("%d messages of 2 MiB stored with 8 MiB of room past the reserve: the ones queue.db had not taken were not counted", stored)
	}
}
