package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// FileName is the file the embedded store keeps in its directory.
const FileName = "queue.db"

// bucketMessages holds every message: id → joinValue(record, payload).
// One bucket, so that storing or removing a message writes one key (the
// earlier layout, two buckets, is moved into it at open: migrate).
var bucketMessages = []byte("messages")

// messagesFill is how full bbolt packs the messages bucket's pages when it
// splits them. Ids grow with time (newID), so new messages go to the right
// end of the tree and delivered ones leave from the left: at bbolt's
// default of 0.5 every page stays about half empty, and a backlog of small
// messages takes about twice the pages it needs (TestFileStorePacksItsPages).
const messagesFill = 0.9

// messages is the messages bucket of a write transaction, packed to
// messagesFill when its pages split.
func messages(tx *bolt.Tx) *bolt.Bucket {
	b := tx.Bucket(bucketMessages)
	b.FillPercent = messagesFill
	return b
}

// record is what the file store keeps of a message beside its payload:
// small, read whole at open to rebuild the in-memory index.
type record struct {
	Route    string    `json:"route"`
	Received time.Time `json:"received"`
	Size     int64     `json:"size"`
	Progress Progress  `json:"progress"`
}

// FileOptions configure the embedded store.
type FileOptions struct {
	// Dir holds the store's one file (FileName, mode 0600); it is created
	// with mode 0700 if missing.
	Dir string
	// MaxBytes bounds the stored payloads (pending and dead); past it Add
	// returns ErrFull. Zero: no bound.
	MaxBytes int64
	// LockTimeout is how long Open waits for the file's lock, which one
	// process holds at a time. Default 1s.
	LockTimeout time.Duration

	// onCommit, for tests, is called with the transaction id of every
	// commit that stored a new message (once per message).
	onCommit func(txid int)
	// fault, for tests, fails every commit while it returns an error (a
	// full disk).
	fault func() error
	// applyFault, for tests, replaces fault for the commits of the store
	// file (the journal's still ask fault).
	applyFault func() error
	// journalMax, for tests, replaces journalMax.
	journalMax int64
	// freeSpace, for tests, replaces the free space of the disk.
	freeSpace func() int64
	// recordFault, for tests, fails the commits of the store file that
	// write journal records while it returns an error.
	recordFault func() error
}

// FileStore is the embedded Store: one bbolt file, written in group
// commits (concurrent Adds share one transaction and one fsync), with an
// in-memory index of what is due. One process opens it at a time.
type FileStore struct {
	db        *bolt.DB
	commits   *committer   // the store file's commits
	journal   *committer   // the journal's: senders' new messages
	j         *journal     // written by journal's goroutine only
	apply     *applyQueue  // what the journal holds that the store file does not
	groups    int          // the journal's groups (onCommit)
	opened    os.FileInfo  // the file opened, for Check
	jopened   os.FileInfo  // the journal opened
	jwritten  atomic.Int64 // the journal's bytes written in this lap (stillOpened)
	max       int64
	onCommit  func(int)
	freeSpace func() int64 // FileOptions.freeSpace
	pageSize  int64        // queue.db's (db.Info races with a commit that grows the file)
	checking  atomic.Bool  // a Check's write is waiting on the disk
	unfit     atomic.Int64 // the largest value a commit failed to write since a check fit one

	mu      sync.Mutex
	idx     map[string]*entry
	due     map[string]*dueHeap
	bytes   int64 // stored payloads, plus those being added
	waiting int   // Adds waiting for their commit (maxWaitingAdds)
	hot     int64 // payload bytes of the messages kept in memory (entry.hot)
}

// maxWaitingAdds bounds the new messages waiting for their commit at
// once. A healthy disk takes them in a commit or two (maxGroup each);
// when it hangs, each waiting sender holds a connection, a goroutine and
// its body until it answers, so past this bound senders get 503 (not
// stored, retried later) rather than exhaust the gate's descriptors.
const maxWaitingAdds = 2 * maxGroup

// hotBudget bounds the payload bytes of new messages the file store keeps
// in memory for their first lease, which then reads nothing back from the
// file: under load a message is usually leased moments after it is stored.
const hotBudget = 4 << 20

// entry is the index's view of one message.
type entry struct {
	mu       sync.Mutex // serializes this message's writes
	route    string
	received time.Time
	size     int64
	state    State
	next     time.Time
	leased   bool
	gone     bool   // removed; a writer waiting on mu must not bring it back
	gen      uint64 // bumped whenever next changes: older heap items are stale
	seq      uint64 // its journal record (0: in the store file when opened)
	// hot is a private copy of the message as stored, kept for its first
	// lease while the store's hotBudget allows; any write drops it.
	hot *Message
}

// keepHot keeps a private copy of m (stored as size bytes) for its first
// lease, if the budget allows; s.mu is held.
func (s *FileStore) keepHot(e *entry, m *Message) {
	if e.state != Pending || s.hot+e.size > hotBudget {
		return
	}
	c := *m                      // the header is handed over to the store (Add)
	c.Body = bytes.Clone(m.Body) // the caller's buffer may be reused once Add returns
	c.lease = ""
	e.hot = &c
	s.hot += e.size
}

// dropHot forgets e's in-memory copy; s.mu is held.
func (s *FileStore) dropHot(e *entry) {
	if e.hot != nil {
		e.hot = nil
		s.hot -= e.size
	}
}

// push schedules a pending entry; s.mu is held.
func (s *FileStore) push(id string, e *entry) {
	h := s.due[e.route]
	if h == nil {
		h = &dueHeap{}
		s.due[e.route] = h
	}
	h.push(dueItem{next: e.next, id: id, gen: e.gen})
}

// Add stores m in a group commit of the journal and returns once it is
// on disk.
func (s *FileStore) Add(ctx context.Context, m *Message) error {
	if !validID(m.ID) {
		return fmt.Errorf("queue: invalid message id %q", m.ID)
	}
	payload, err := encodePayload(m)
	if err != nil {
		return err
	}
	size := int64(len(payload))
	rec := encodeRecord(record{Route: m.Route, Received: m.Received, Size: size, Progress: m.Progress})
	s.mu.Lock()
	if s.max > 0 && s.bytes+size > s.max {
		s.mu.Unlock()
		return ErrFull
	}
	if s.waiting >= maxWaitingAdds {
		s.mu.Unlock()
		return fmt.Errorf("%w: %d messages already wait for the disk", ErrUnavailable, maxWaitingAdds)
	}
	s.bytes += size // reserved while the commit runs
	s.waiting++
	s.mu.Unlock()
	value := joinValue(rec, payload)
	jr := &journalRecord{id: m.ID, value: value}
	err = s.journal.doForSender(ctx, jr)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waiting--
	if err != nil {
		s.bytes -= size
		if errors.Is(err, errSenderGone) || errors.Is(err, ErrFull) {
			return err // nothing was written: not the store's failure (ErrFull: its room, this message)
		}
		if !errors.Is(err, errStoreClosed) {
			s.noteUnfit(int64(len(value)))
		}
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	e := &entry{route: m.Route, received: m.Received, size: size, state: m.State, next: m.Next, seq: jr.seq}
	s.idx[m.ID] = e
	if e.state == Pending {
		s.push(m.ID, e)
		s.keepHot(e, m)
	}
	return nil
}

// Lease hands out due messages of route, oldest due first: those kept in
// memory at once, the others read from the file.
func (s *FileStore) Lease(ctx context.Context, route string, now time.Time, n int) ([]*Message, error) {
	var ids []string
	var seqs []uint64 // each id's journal record
	out := make([]*Message, 0, n)
	s.mu.Lock()
	if h := s.due[route]; h != nil {
		for h.Len() > 0 && len(ids)+len(out) < n {
			top := h.peek()
			e := s.idx[top.id]
			if e == nil || e.gen != top.gen || e.state != Pending || e.leased {
				h.pop() // stale
				continue
			}
			if top.next.After(now) {
				break
			}
			h.pop()
			e.leased = true
			if m := e.hot; m != nil {
				s.dropHot(e)
				out = append(out, m)
				continue
			}
			ids = append(ids, top.id)
			seqs = append(seqs, e.seq)
		}
	}
	s.mu.Unlock()
	if len(ids) == 0 {
		return out, nil
	}
	ids, unwritten := s.written(ctx, ids, seqs)
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, id := range ids {
			m, err := read(tx, id)
			if errors.Is(err, ErrNotFound) {
				continue // dropped meanwhile
			}
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		s.mu.Lock()
		for _, id := range ids {
			if e := s.idx[id]; e != nil && e.leased {
				e.leased = false
				s.push(id, e)
			}
		}
		s.mu.Unlock()
		return out, fmt.Errorf("%w: %w", ErrUnavailable, err) // those kept in memory are leased: attempt them
	}
	if unwritten != nil && len(out) == 0 {
		return out, fmt.Errorf("%w: %w", ErrUnavailable, unwritten)
	}
	return out, nil
}

// written waits until the store file holds the journal records (seqs)
// of the leased ids, and returns them. If it cannot take them (a full
// disk), it returns those it holds, with why the others are not: they
// are due again in writeFailedRetry, while those the store file holds
// are attempted (removing them may free the pages the others need).
func (s *FileStore) written(ctx context.Context, ids []string, seqs []uint64) ([]string, error) {
	err := s.waitApplied(ctx, slices.Max(seqs))
	if err == nil {
		return ids, nil
	}
	applied := s.apply.appliedSeq()
	held := ids[:0:0]
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, id := range ids {
		if seqs[i] <= applied {
			held = append(held, id)
		} else if e := s.idx[id]; e != nil {
			s.unlease(id, e)
		}
	}
	return held, err
}

// Has reports whether a message is stored (an in-memory look-up).
func (s *FileStore) Has(ctx context.Context, id string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.idx[id]
	return e != nil && !e.gone, nil
}

// Get returns one message.
func (s *FileStore) Get(ctx context.Context, id string) (*Message, error) {
	return s.readAny(id, true)
}

// readAny reads a message only in the journal from its record held in
// memory (until queue.db takes it: a write on the message waits for
// that, so the record is current), else from queue.db. Memory first, and
// before the read transaction begins: a record written into queue.db
// meanwhile has left memory, and a transaction begun before that would
// miss it.
func (s *FileStore) readAny(id string, whole bool) (*Message, error) {
	if v := s.apply.lookup(id); v != nil {
		return decodeStored(id, v, whole)
	}
	var m *Message
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		m, err = readInto(tx, id, whole)
		return err
	})
	return m, err
}

// List returns up to limit messages of route in state, oldest first.
func (s *FileStore) List(ctx context.Context, route string, state State, limit int) ([]*Message, error) {
	s.mu.Lock()
	ids := oldestFirst(s.idx, func(e *entry) bool { return e.route == route && e.state == state }, limit)
	s.mu.Unlock()
	var out []*Message
	for _, id := range ids {
		m, err := s.readAny(id, false)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
	return out, nil
}

// Stats counts the stored messages per route.
func (s *FileStore) Stats(ctx context.Context) ([]RouteStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return statsOf(s.idx), nil
}

// Close lets the commits running finish, writes into the store file
// what the journal holds that it does not (if that fails, the next open
// does) and closes the files; a write after Close fails.
func (s *FileStore) Close() error {
	s.journal.close()
	_ = s.commits.flush()
	s.commits.close()
	jerr := s.j.f.Close()
	return errors.Join(s.db.Close(), jerr)
}

var _ Store = (*FileStore)(nil)
