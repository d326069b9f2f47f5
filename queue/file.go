package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// FileName is the file the embedded store keeps in its directory.
const FileName = "queue.db"

var (
	bucketPayload = []byte("payload") // id → the message's payload (JSON)
	bucketIndex   = []byte("index")   // id → record (JSON): route, arrival, size, progress
)

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
}

// FileStore is the embedded Store: one bbolt file, written in group
// commits (concurrent Adds share one transaction and one fsync), with an
// in-memory index of what is due. One process opens it at a time.
type FileStore struct {
	db       *bolt.DB
	commits  *committer
	opened   os.FileInfo // the file opened, for Check
	max      int64
	onCommit func(int)

	mu    sync.Mutex
	idx   map[string]*entry
	due   map[string]*dueHeap
	bytes int64 // stored payloads, plus those being added
}

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
}

// OpenFile opens (or creates) the store in o.Dir.
func OpenFile(o FileOptions) (*FileStore, error) {
	if o.Dir == "" {
		return nil, errors.New("queue: no directory")
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = time.Second
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	if err := safePlace(o.Dir); err != nil {
		return nil, err
	}
	path := filepath.Join(o.Dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: o.LockTimeout, FreelistType: bolt.FreelistMapType, NoFreelistSync: true})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("queue: %s is in use by another process (a running gate?): %w: %w", path, ErrInUse, err)
	}
	if err != nil {
		return nil, fmt.Errorf("queue: opening %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil { // a file made by hand is tightened
		db.Close()
		return nil, fmt.Errorf("queue: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("queue: %w", err)
	}
	s := &FileStore{db: db, opened: fi, max: o.MaxBytes, onCommit: o.onCommit, idx: map[string]*entry{}, due: map[string]*dueHeap{}}
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	s.commits = newCommitter(db)
	s.commits.fault = o.fault
	return s, nil
}

// safePlace refuses a store directory anyone may write into (another
// local user could plant a database of forged messages while the gate is
// stopped) and a store file that is not a plain file (a symbolic link
// would make the gate, and check, write where it points).
func safePlace(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("queue: %s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o002 != 0 {
		return fmt.Errorf("queue: %s is writable by every local user (mode %04o): `chmod o-w` it (0700 is what the gate creates)", dir, fi.Mode().Perm())
	}
	path := filepath.Join(dir, FileName)
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("queue: %s is not a plain file (a symbolic link?): the store must be a regular file", path)
	}
	return nil
}

// load creates the buckets and rebuilds the index: every pending message
// is due again (an attempt cut short by a crash is made again).
func (s *FileStore) load() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketPayload); err != nil {
			return err
		}
		b, err := tx.CreateBucketIfNotExists(bucketIndex)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			var r record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("queue: index entry %q: %w", k, err)
			}
			e := &entry{route: r.Route, received: r.Received, size: r.Size, state: r.Progress.State, next: r.Progress.Next}
			s.idx[string(k)] = e
			s.bytes += r.Size
			if e.state == Pending {
				s.push(string(k), e)
			}
			return nil
		})
	})
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

// Add stores m in a group commit and returns once it is on disk.
func (s *FileStore) Add(ctx context.Context, m *Message) error {
	if !validID(m.ID) {
		return fmt.Errorf("queue: invalid message id %q", m.ID)
	}
	payload, err := encodePayload(m)
	if err != nil {
		return err
	}
	size := int64(len(payload))
	rec, err := json.Marshal(record{Route: m.Route, Received: m.Received, Size: size, Progress: m.Progress})
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.max > 0 && s.bytes+size > s.max {
		s.mu.Unlock()
		return ErrFull
	}
	s.bytes += size // reserved while the commit runs
	s.mu.Unlock()
	err = s.commits.do(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketPayload).Put([]byte(m.ID), payload); err != nil {
			return err
		}
		if s.onCommit != nil {
			id := tx.ID() // after the commit the transaction has no id
			tx.OnCommit(func() { s.onCommit(id) })
		}
		return tx.Bucket(bucketIndex).Put([]byte(m.ID), rec)
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.bytes -= size
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	e := &entry{route: m.Route, received: m.Received, size: size, state: m.State, next: m.Next}
	s.idx[m.ID] = e
	if e.state == Pending {
		s.push(m.ID, e)
	}
	return nil
}

// Lease hands out due messages of route, oldest due first.
func (s *FileStore) Lease(ctx context.Context, route string, now time.Time, n int) ([]*Message, error) {
	var ids []string
	s.mu.Lock()
	if h := s.due[route]; h != nil {
		for h.Len() > 0 && len(ids) < n {
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
			ids = append(ids, top.id)
		}
	}
	s.mu.Unlock()
	out := make([]*Message, 0, len(ids))
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
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return out, nil
}

// write runs change on id's entry with its writes serialized: update
// writes the transaction (ErrNotFound when the message is gone), apply
// then updates the index under s.mu.
func (s *FileStore) write(id string, update func(tx *bolt.Tx) error, apply func(e *entry)) error {
	s.mu.Lock()
	e := s.idx[id]
	s.mu.Unlock()
	if e == nil {
		return ErrNotFound
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gone {
		return ErrNotFound
	}
	if err := s.commits.do(update); err != nil {
		if errors.Is(err, ErrNotFound) {
			return err
		}
		s.mu.Lock()
		s.unlease(id, e)
		s.mu.Unlock()
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	s.mu.Lock()
	apply(e)
	s.mu.Unlock()
	return nil
}

// writeFailedRetry is how soon a message whose attempt's outcome could
// not be written (a full disk) is attempted again.
const writeFailedRetry = 5 * time.Second

// unlease hands a leased entry whose outcome could not be written back to
// the schedule, due a little later: its stored state is what it was, and
// nothing else would ever lease it again in this process. s.mu is held.
func (s *FileStore) unlease(id string, e *entry) {
	if !e.leased || e.gone {
		return
	}
	e.leased = false
	if later := time.Now().Add(writeFailedRetry); e.next.Before(later) {
		e.next = later
	}
	e.gen++
	s.push(id, e)
}

// remove forgets a deleted entry; s.mu is held.
func (s *FileStore) remove(id string, e *entry) {
	e.gone = true
	delete(s.idx, id)
	s.bytes -= e.size
}

// Ack removes a delivered message.
func (s *FileStore) Ack(ctx context.Context, m *Message) error {
	return s.write(m.ID, func(tx *bolt.Tx) error { return deleteMessage(tx, m.ID) },
		func(e *entry) { s.remove(m.ID, e) })
}

// Retry stores m.Progress and makes the message due at m.Next.
func (s *FileStore) Retry(ctx context.Context, m *Message) error {
	p := m.Progress
	p.State = Pending
	return s.write(m.ID, func(tx *bolt.Tx) error { return putProgress(tx, m.ID, func(q *Progress) { *q = p }) },
		func(e *entry) {
			e.state, e.next, e.leased = Pending, p.Next, false
			e.gen++
			s.push(m.ID, e)
		})
}

// Bury stores m.Progress and makes the message a dead letter.
func (s *FileStore) Bury(ctx context.Context, m *Message) error {
	p := m.Progress
	p.State = Dead
	return s.write(m.ID, func(tx *bolt.Tx) error { return putProgress(tx, m.ID, func(q *Progress) { *q = p }) },
		func(e *entry) {
			e.state, e.leased = Dead, false
			e.gen++
		})
}

// Revive makes a dead letter pending with p, or a pending message that is
// not leased due at p.Next.
func (s *FileStore) Revive(ctx context.Context, id string, p Progress) error {
	s.mu.Lock()
	e := s.idx[id]
	leased := e != nil && e.leased
	s.mu.Unlock()
	if leased {
		return nil
	}
	return s.write(id, func(tx *bolt.Tx) error {
		return putProgress(tx, id, func(q *Progress) {
			if q.State == Dead {
				*q = p
			} else {
				q.Next = p.Next
			}
			q.State = Pending
		})
	}, func(e *entry) {
		if e.leased { // leased since: the attempt's outcome will be written
			return
		}
		e.state, e.next = Pending, p.Next
		e.gen++
		s.push(id, e)
	})
}

// Drop removes a message, whatever its state.
func (s *FileStore) Drop(ctx context.Context, id string) error {
	return s.write(id, func(tx *bolt.Tx) error { return deleteMessage(tx, id) },
		func(e *entry) { s.remove(id, e) })
}

// Get returns one message.
func (s *FileStore) Get(ctx context.Context, id string) (*Message, error) {
	var m *Message
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		m, err = read(tx, id)
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
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, id := range ids {
			m, err := read(tx, id)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		return nil
	})
	return out, err
}

// Stats counts the stored messages per route.
func (s *FileStore) Stats(ctx context.Context) ([]RouteStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return statsOf(s.idx), nil
}

// Close lets the commit running finish and closes the file; a write
// after Close fails.
func (s *FileStore) Close() error {
	s.commits.close()
	return s.db.Close()
}

var _ Store = (*FileStore)(nil)
