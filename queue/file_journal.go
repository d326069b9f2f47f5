package queue

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// writeJournal is the journal committer's write: it makes a group of
// senders' messages durable in the journal (one write, one flush), hands
// them to the store file's committer (apply) and kicks it. First, while
// the store file could not take the last ones (a full disk), or holds
// too many unapplied, or the journal must start again from its first
// byte, it waits for a commit of the store file, and fails the group if
// that fails: nothing new is acknowledged that the store file may never
// hold.
func (s *FileStore) writeJournal(group []commitReq) ([]error, error) {
	recs := make([]*journalRecord, len(group))
	size := int64(0)
	for i, r := range group {
		recs[i] = r.rec
		size += journalRecordSize(r.rec)
	}
	unapplied, _, failing := s.apply.state()
	wrap := s.j.mustWrap(size)
	if failing != nil || wrap || unapplied > maxUnapplied {
		if err := s.commits.flush(); err != nil {
			return nil, err
		}
		if wrap {
			if err := s.j.newLap(); err != nil {
				return nil, err
			}
		}
	}
	if err := s.roomFor(size); err != nil {
		return nil, err
	}
	if err := s.j.write(recs); err != nil {
		return nil, err
	}
	s.jwritten.Store(s.j.pos)
	if err := s.stillOpened(); err != nil {
		return nil, err
	}
	s.apply.add(recs)
	s.commits.kick(unapplied > maxUnapplied/2)
	if s.onCommit != nil {
		s.groups++
		for range recs {
			s.onCommit(s.groups)
		}
	}
	return nil, nil
}

// DiskReserve is the room the file store keeps (free space on its disk
// and free pages in queue.db): with less, new messages get 503, so that deliveries can still be recorded and
// removed (a bbolt commit needs new pages even to remove a message, and
// bbolt grows its file 16 MiB at a time) and the journal's messages
// written into the store file. A queue that filled its own disk
// otherwise stopped for good: nothing delivered, nothing removable, and
// no restart.
const DiskReserve = 32 << 20

// errNoReserve is why a new message is refused when the disk has only
// free bytes left.
func errNoReserve(free int64) error {
	return fmt.Errorf("the store has %s of room (free on its disk and free pages in queue.db), less than the %s kept free for deliveries to be recorded", mib(free), mib(DiskReserve))
}

// largeGroup is the size past which a group must fit on the disk
// itself: bbolt stores a large value in a run of contiguous pages, which
// the free pages a drained queue left seldom hold, and grows its file
// instead (an outside attack: 9 MB bodies took a disk with 30 MiB free
// and 66 MiB of free pages to 0).
const largeGroup = 1 << 20

// roomFor refuses a group of size bytes that would leave the store less
// than DiskReserve of room, or, for a large group, less than half of it
// free on the disk itself.
// The groups the journal took that queue.db does not hold yet count as
// taken (an outside attack: five 9 MB groups, each checked against the
// disk alone, filled it to 0). A refusal is ErrFull: this group does not
// fit, the store is not failing (an ErrUnavailable made every queued
// route answer 503 until the next readiness check).
func (s *FileStore) roomFor(size int64) error {
	disk, pages := s.room()
	if disk < 0 {
		return nil
	}
	unapplied, _, _ := s.apply.state()
	if left := disk + pages - unapplied - size; left < DiskReserve {
		return fmt.Errorf("%w: %w", ErrFull, errNoReserve(left))
	}
	if left := disk - unapplied - size; size > largeGroup && left < DiskReserve/2 {
		return fmt.Errorf("%w: %s of new messages would leave %s free on the store's disk, less than the %s kept for large messages (free pages in queue.db seldom hold them)", ErrFull, mib(size), mib(left), mib(DiskReserve/2))
	}
	return nil
}

// mib formats n bytes in MiB, one decimal (0 for less than none).
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(max(n, 0))/(1<<20)) }

// free is the room left for the store: the free space on its disk and
// queue.db's free pages, which a drained queue keeps (the file never
// shrinks) and new messages reuse (-1: unknown).
func (s *FileStore) free() int64 {
	disk, pages := s.room()
	if disk < 0 {
		return disk
	}
	return disk + pages
}

// room is the free space on the store's disk (-1: unknown) and the
// bytes of queue.db's free pages.
func (s *FileStore) room() (disk, pages int64) {
	if s.freeSpace != nil {
		disk = s.freeSpace()
	} else {
		disk = diskFree(filepath.Dir(s.db.Path()))
	}
	return disk, int64(s.db.Stats().FreePageN) * s.pageSize
}

// nop is a write of nothing: a commit of the store file that writes only
// the journal's records it does not hold yet.
func nop(*bolt.Tx) error { return nil }

// journalRecordSize is the bytes r takes in the journal.
func journalRecordSize(r *journalRecord) int64 {
	var v [binary.MaxVarintLen64]byte
	return int64(journalHeader + binary.PutUvarint(v[:], uint64(len(r.id))) + len(r.id) + len(r.value))
}

// waitApplied returns once the store file holds the journal's record
// seq (and those before it), or fails as the store file's last commit
// did, or ctx ends.
func (s *FileStore) waitApplied(ctx context.Context, seq uint64) error {
	return s.apply.wait(ctx, seq, s.commits.kick)
}

// openJournal replays dir's journal into db (fault, for tests, fails
// that) and readies it for writing, up to limit bytes (0: journalMax).
func openJournal(dir string, db *bolt.DB, limit int64, fault func() error) (*journal, os.FileInfo, replayed, error) {
	if limit <= 0 {
		limit = journalMax
	}
	f, created, err := openJournalFile(dir, false)
	if err != nil {
		return nil, nil, replayed{}, err
	}
	fail := func(err error) (*journal, os.FileInfo, replayed, error) {
		f.Close()
		return nil, nil, replayed{}, err
	}
	r, err := replayJournal(db, f, fault)
	if err != nil {
		return fail(err)
	}
	var j *journal
	if len(r.pending) > 0 {
		j, err = resumeJournal(f, r.chain, limit)
	} else {
		j, err = startJournal(f, r.applied, limit)
	}
	if err != nil {
		return fail(err)
	}
	if created { // the new file's name must outlive a crash as its records do
		if err := syncDir(dir); err != nil {
			return fail(err)
		}
	}
	fi, err := os.Lstat(f.Name())
	if err != nil {
		return fail(fmt.Errorf("queue: %w", err))
	}
	return j, fi, r, nil
}

// syncDir flushes dir's entries.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("queue: flushing %s: %w", dir, err)
	}
	return nil
}
