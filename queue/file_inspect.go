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

// FileSummary is what InspectFile reads of a file store.
type FileSummary struct {
	// Stats counts the stored messages per route (empty for an earlier
	// version's layout, which is not read).
	Stats []RouteStats
	// Earlier is true when the file holds an earlier version's layout,
	// which the next OpenFile converts (and earlier versions then do not
	// read).
	Earlier bool
}

// InspectFile reads the file store in dir without writing anything: no
// conversion, no change of mode, no commit (`check` asks it, and must
// not change a store an earlier version may still open). The file is
// opened read-only under a shared lock, so a running gate's store is
// ErrInUse. The directory is checked as OpenFile checks it.
func InspectFile(dir string, lockTimeout time.Duration) (FileSummary, error) {
	if err := CheckPlace(dir); err != nil {
		return FileSummary{}, err
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: lockTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return FileSummary{}, fmt.Errorf("queue: %s is in use by another process (a running gate?): %w: %w", path, ErrInUse, err)
	}
	if err != nil {
		return FileSummary{}, fmt.Errorf("queue: opening %s read-only: %w", path, err)
	}
	defer db.Close()
	var sum FileSummary
	err = db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(legacyIndex) != nil || tx.Bucket(legacyPayload) != nil {
			sum.Earlier = true
			return nil
		}
		b := tx.Bucket(bucketMessages)
		if b == nil {
			return nil
		}
		idx := map[string]*entry{}
		if err := eachEntry(b, func(id string, e *entry) { idx[id] = e }); err != nil {
			return err
		}
		err := eachJournaled(dir, appliedSeq(tx), func(id string, e *entry) { idx[id] = e })
		sum.Stats = statsOf(idx)
		return err
	})
	return sum, err
}

// eachJournaled reads, without writing, the messages dir's journal holds
// past applied (which the next OpenFile writes into the store file), as
// eachEntry reads the store file's.
func eachJournaled(dir string, applied uint64, fn func(id string, e *entry)) error {
	f, _, err := openJournalFile(dir, true)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	_, err = scanJournal(f, fi.Size(), applied, func(jr journalRecord) error {
		r, _, err := decodeValue(jr.id, jr.value)
		if err == nil {
			fn(jr.id, &entry{route: r.Route, received: r.Received, size: r.Size, state: r.Progress.State, next: r.Progress.Next})
		}
		return err
	})
	return err
}
