package queue

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

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
	if err := CheckPlace(o.Dir); err != nil {
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
	s := &FileStore{db: db, opened: fi, max: o.MaxBytes, onCommit: o.onCommit, freeSpace: o.freeSpace, pageSize: int64(db.Info().PageSize), idx: map[string]*entry{}, due: map[string]*dueHeap{}}
	applyFault := o.fault
	if o.applyFault != nil {
		applyFault = o.applyFault
	}
	if err := s.load(o.Dir, o.journalMax, applyFault); err != nil {
		if s.j != nil {
			s.j.f.Close()
		}
		db.Close()
		return nil, err
	}
	s.commits = newCommitter(db, s.apply, applyFault, s.stillOpened)
	s.commits.recordFault = o.recordFault
	s.journal = newJournalCommitter(o.fault, s.writeJournal)
	if s.apply.pending() > 0 {
		s.commits.kick(false) // the records the open could not write are tried again
	}
	return s, nil
}

// CheckPlace reports, creating nothing, why OpenFile would refuse dir as
// it is: not a directory, a directory anyone may write into (another
// local user could plant a database of forged messages while the gate is
// stopped), or a store file that is not a plain file (a symbolic link
// would make the gate, and check, write where it points). `check` asks it
// too.
func CheckPlace(dir string) error {
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
	for _, name := range []string{FileName, JournalName} {
		path := filepath.Join(dir, name)
		if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
			return fmt.Errorf("queue: %s is not a plain file (a symbolic link?): the store must be a regular file", path)
		}
	}
	return nil
}

// load creates the buckets, writes into the store file what the journal
// in dir holds that it does not (openJournal), and rebuilds the index
// from the records (the payloads are not read): every pending message is
// due again (an attempt cut short by a crash is made again).
func (s *FileStore) load(dir string, journalMax int64, fault func() error) error {
	if err := migrate(s.db); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketMessages); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(bucketJournal)
		return err
	})
	if err != nil {
		return err
	}
	j, jfi, r, err := openJournal(dir, s.db, journalMax, fault)
	if err != nil {
		return err
	}
	s.j, s.jopened, s.apply = j, jfi, newApplyQueue(r.applied)
	s.jwritten.Store(j.pos)
	if len(r.pending) > 0 {
		s.apply.add(r.pending)
		s.apply.done(nil, r.failed)
		for _, jr := range r.pending {
			rec, _, err := decodeValue(jr.id, jr.value) // scanJournal decoded it
			if err != nil {
				return err
			}
			e := &entry{route: rec.Route, received: rec.Received, size: rec.Size, state: rec.Progress.State, next: rec.Progress.Next, seq: jr.seq}
			s.idx[jr.id] = e
			s.bytes += e.size
			if e.state == Pending {
				s.push(jr.id, e)
			}
		}
	}
	return s.db.View(func(tx *bolt.Tx) error {
		return eachEntry(tx.Bucket(bucketMessages), func(id string, e *entry) {
			s.idx[id] = e
			s.bytes += e.size
			if e.state == Pending {
				s.push(id, e)
			}
		})
	})
}

// eachEntry reads every message's record in b (not its payload) into an
// index entry and hands it to fn: load and InspectFile both rebuild the
// index this way.
func eachEntry(b *bolt.Bucket, fn func(id string, e *entry)) error {
	return b.ForEach(func(k, v []byte) error {
		r, _, err := decodeValue(string(k), v)
		if err != nil {
			return err
		}
		fn(string(k), &entry{route: r.Route, received: r.Received, size: r.Size, state: r.Progress.State, next: r.Progress.Next})
		return nil
	})
}
