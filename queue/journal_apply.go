package queue

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bucketJournal holds journalApplied: the sequence number of the last
// journal record the store file holds, written in the same transaction
// as the records.
var (
	bucketJournal  = []byte("journal")
	journalApplied = []byte("applied")
)

// applyAfter is how long a journal record waits to be written into the
// store file, unless something needs it there sooner (a read of its
// message, the journal starting again, a lease from the file): a
// message delivered meanwhile is then neither written nor removed (its
// removal's commit only records the journal's progress), so under load
// most messages never cost the store file a write.
const applyAfter = 20 * time.Millisecond

// maxUnapplied bounds the bytes of messages the journal holds that the
// store file does not yet: past it, the journal's next group waits until
// the store file has taken them.
const maxUnapplied = 16 << 20

// applyQueue is what the journal has made durable (and the senders were
// told) that the store file does not hold yet: every commit of the store
// file writes it first, in order, so that any later write (an attempt's
// outcome, an operator's drop) finds its message.
type applyQueue struct {
	mu      sync.Mutex
	recs    []*journalRecord
	bytes   int64
	added   uint64        // the last record added
	applied uint64        // every record up to here is in the store file
	changed chan struct{} // closed (and replaced) when an apply ends
	err     error         // the last apply's failure; nil once one succeeds
}

func newApplyQueue(applied uint64) *applyQueue {
	return &applyQueue{added: applied, applied: applied, changed: make(chan struct{})}
}

// add queues recs, which the journal has made durable.
func (q *applyQueue) add(recs []*journalRecord) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := time.Now()
	for _, r := range recs {
		q.bytes += int64(len(r.value))
		r.at = now
	}
	q.recs = append(q.recs, recs...)
	q.added = recs[len(recs)-1].seq
}

// take returns the oldest records queued, for a commit of the store
// file (they stay queued until done): all of them with all, else those
// queued before cutoff and up to the last one whose message the commit
// changes (needed).
func (q *applyQueue) take(all bool, cutoff time.Time, needed func(id string) bool) []*journalRecord {
	q.mu.Lock()
	defer q.mu.Unlock()
	k := len(q.recs)
	if !all {
		k = 0
		for i, r := range q.recs {
			if r.at.Before(cutoff) || needed(r.id) {
				k = i + 1
			}
		}
	}
	return q.recs[:k:k]
}

// pending is the number of records queued.
func (q *applyQueue) pending() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.recs)
}

// done ends an apply of recs (take's): on success they leave the queue.
func (q *applyQueue) done(recs []*journalRecord, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.err = err
	if err == nil && len(recs) > 0 {
		for _, r := range recs {
			q.bytes -= int64(len(r.value))
		}
		q.recs = append(q.recs[:0:0], q.recs[len(recs):]...)
		q.applied = recs[len(recs)-1].seq
	}
	close(q.changed)
	q.changed = make(chan struct{})
}

// state reports the bytes queued, the last record added and the last
// apply's failure.
func (q *applyQueue) state() (bytes int64, added uint64, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes, q.added, q.err
}

// lookup returns the value of id's record if it is queued.
func (q *applyQueue) lookup(id string) []byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, r := range q.recs {
		if r.id == id {
			return r.value
		}
	}
	return nil
}

// appliedSeq is the last record the store file holds.
func (q *applyQueue) appliedSeq() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.applied
}

// wait returns once the store file holds record seq, or fails as the
// store file's next commit (which kick asks for) does, or when ctx ends.
func (q *applyQueue) wait(ctx context.Context, seq uint64, kick func(all bool)) error {
	for {
		q.mu.Lock()
		applied, ch := q.applied, q.changed
		q.mu.Unlock()
		if applied >= seq {
			return nil
		}
		kick(true)
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		q.mu.Lock()
		applied, err := q.applied, q.err
		q.mu.Unlock()
		if applied < seq && err != nil {
			return err
		}
	}
}

// putRecords writes recs into tx, but those of messages that dropped
// marks removed, and records the last one as applied.
func putRecords(tx *bolt.Tx, recs []*journalRecord, dropped map[string]bool) error {
	if len(recs) == 0 {
		return nil
	}
	b := messages(tx)
	for _, r := range recs {
		if dropped[r.id] {
			continue
		}
		if err := b.Put([]byte(r.id), r.value); err != nil {
			return err
		}
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], recs[len(recs)-1].seq)
	return tx.Bucket(bucketJournal).Put(journalApplied, v[:])
}

// appliedSeq reads journalApplied (0: none yet).
func appliedSeq(tx *bolt.Tx) uint64 {
	b := tx.Bucket(bucketJournal)
	if b == nil {
		return 0
	}
	if v := b.Get(journalApplied); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// replayed is what opening the store found in its journal.
type replayed struct {
	applied uint64           // the last record the store file holds
	pending []*journalRecord // records it could not take (failed says why)
	failed  error
	chain   journalChain // where the journal's records end
}

// replayJournal writes into the store file, in one commit, the records
// of f it does not hold yet (a crash came between a group's flush and
// its commit). If that commit fails (fault, for tests, fails it too),
// the records are returned pending: the store opens with them in
// memory, as on a disk that filled up while it ran.
func replayJournal(db *bolt.DB, f *os.File, fault func() error) (replayed, error) {
	var r replayed
	if err := db.View(func(tx *bolt.Tx) error { r.applied = appliedSeq(tx); return nil }); err != nil {
		return r, err
	}
	fi, err := f.Stat()
	if err != nil {
		return r, fmt.Errorf("queue: %w", err)
	}
	var recs []*journalRecord
	r.chain, err = scanJournal(f, fi.Size(), r.applied, func(jr journalRecord) error {
		recs = append(recs, &jr)
		return nil
	})
	if err != nil {
		return r, fmt.Errorf("queue: replaying %s: %w (move it aside to open the store without the messages it holds)", f.Name(), err)
	}
	if len(recs) == 0 {
		return r, nil
	}
	if fault != nil {
		r.failed = fault()
	}
	if r.failed == nil {
		r.failed = db.Update(func(tx *bolt.Tx) error { return putRecords(tx, recs, nil) })
	}
	if r.failed != nil {
		r.pending = recs
		return r, nil
	}
	r.applied = recs[len(recs)-1].seq
	return r, nil
}
