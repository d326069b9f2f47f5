package queue

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Checker is a store that can tell, cheaply, whether it can be written:
// the gate's readiness asks it in the background.
type Checker interface {
	// Check returns nil when the store takes writes, else why not.
	Check(ctx context.Context) error
}

var (
	_ Checker = (*FileStore)(nil)
	_ Checker = (*RedisStore)(nil)
)

// Check reports whether the file store still takes durable writes: its
// file is still the one it opened, and a message's write commits and
// syncs inside it. The check puts a key where a new message goes and
// deletes it in the same transaction: the pages on that path are written
// afresh, as a new message's would be, and nothing stays. It writes into
// the file, not a new file beside it: a disk that filled up while a
// drained queue left free pages in the file is ready again (a new file
// would fail there until an operator freed space), and one where a new
// message finds no page is not (a write that only rewrote its own key
// would fit where no message does: an outside attack saw /readyz ready
// while every message got 503). After a message's write failed, the check
// also stores a probe as large as that message, up to ProbeMax, and then
// removes it, so the store is ready again only once such a message fits
// (a one-page check passed on a disk with room for one page while small
// messages kept failing: ready and unready in turn). One check at a time:
// a disk that hangs holds one write, not one per check.
func (s *FileStore) Check(ctx context.Context) error {
	if err := s.stillOpened(); err != nil {
		return err
	}
	if free := s.free(); free >= 0 && free < DiskReserve {
		return fmt.Errorf("%w: %w", ErrUnavailable, errNoReserve(free))
	}
	if !s.checking.CompareAndSwap(false, true) {
		return fmt.Errorf("%w: the last write check is still waiting on the disk", ErrUnavailable)
	}
	unfit := s.unfit.Load()
	need := min(unfit, ProbeMax)
	done := make(chan error, 1)
	go func() {
		err := s.commits.do(func(tx *bolt.Tx) error { return probe(tx, need) })
		if err == nil && need > 0 {
			// Forgotten only if no larger write failed meanwhile (that one
			// the next check asks room for).
			s.unfit.CompareAndSwap(unfit, 0)
			// The probe's pages are freed for the message that needs them;
			// if this fails, the next check removes the probe.
			_ = s.commits.do(dropProbe)
		}
		// Done before the answer: a check that follows at once must not
		// find this one still running (CI saw "still waiting" so).
		s.checking.Store(false)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, ErrUnavailable) {
			err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: the disk did not take a write in time: %w", ErrUnavailable, ctx.Err())
	}
}

// ProbeMax bounds the check's probe: readiness speaks for messages up to
// this size (a gate does not let a larger one that failed make it
// unready): a larger message that does not fit gets 503 (never
// acknowledged) and leaves the gate unready until the next check, but
// cannot keep it unready, and refusing every sender, while smaller
// messages fit (two outside attacks: one message larger than the volume
// kept the gate unready until a restart, and each check's full-size probe
// took whatever space another process freed on a shared disk). A
// webhook is rarely larger (GitHub caps payloads at 25 MB, most vendors'
// events are a few KiB).
const ProbeMax = 64 << 10

// bucketHealth holds the check's probe (probeKey) between the check's two
// commits; no message is ever stored in it.
var (
	bucketHealth = []byte("health")
	probeKey     = []byte("probe")
)

// probe is the check's write: a key put and deleted where a new message
// goes, and, when need > 0, a value of need bytes kept in bucketHealth
// (need == 0 removes it).
func probe(tx *bolt.Tx, need int64) error {
	b := tx.Bucket(bucketMessages)
	key := []byte(newID(time.Now()))
	if b.Get(key) == nil { // else a message's id: never touched (2^-64)
		if err := b.Put(key, []byte{0}); err != nil {
			return err
		}
		if err := b.Delete(key); err != nil {
			return err
		}
	}
	if need == 0 {
		return dropProbe(tx)
	}
	h, err := tx.CreateBucketIfNotExists(bucketHealth)
	if err != nil {
		return err
	}
	return h.Put(probeKey, make([]byte, need))
}

// dropProbe removes the check's probe, if one is stored.
func dropProbe(tx *bolt.Tx) error {
	if tx.Bucket(bucketHealth) == nil {
		return nil
	}
	return tx.DeleteBucket(bucketHealth)
}

// noteUnfit remembers that a value of size bytes could not be written:
// the checks then ask for room for it.
func (s *FileStore) noteUnfit(size int64) {
	for {
		cur := s.unfit.Load()
		if size <= cur || s.unfit.CompareAndSwap(cur, size) {
			return
		}
	}
}

// stillOpened reports whether the store's path still names the file it
// opened: a removed or replaced file (or directory) takes writes and
// fsyncs that no restart will find. Every commit asks it before its
// writes are reported durable, so no message is acknowledged on such a
// file (a removal between this stat and the answer is the window left).
func (s *FileStore) stillOpened() error {
	for _, f := range []struct {
		path   string
		opened os.FileInfo
		length int64 // the bytes written into it
	}{{s.db.Path(), s.opened, 0}, {s.j.f.Name(), s.jopened, s.jwritten.Load()}} {
		fi, err := os.Lstat(f.path) // a link, even to the same file, is refused at the next open
		if err != nil {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		if !os.SameFile(fi, f.opened) {
			return fmt.Errorf("%w: %s was replaced or removed since it was opened", ErrUnavailable, f.path)
		}
		if fi.Size() < f.length {
			return fmt.Errorf("%w: %s was cut to %d bytes since it was written up to %d", ErrUnavailable, f.path, fi.Size(), f.length)
		}
	}
	return nil
}

// Check reports whether Redis answers.
func (r *RedisStore) Check(ctx context.Context) error {
	if err := r.c.Ping(ctx).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}
