package queue

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
// file is still the one it opened (a store whose directory was removed or
// replaced keeps writing to a file nobody will open again), and its
// directory takes a new file, written and synced.
func (s *FileStore) Check(ctx context.Context) error {
	if err := s.stillOpened(); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(s.db.Path()), ".probe-*")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	_, werr := f.Write([]byte{0})
	serr := f.Sync()
	cerr := f.Close()
	rerr := os.Remove(f.Name())
	if err := errors.Join(werr, serr, cerr, rerr); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// stillOpened reports whether the store's path still names the file it
// opened: a removed or replaced file (or directory) takes writes and
// fsyncs that no restart will find. Every commit asks it before its
// writes are reported durable, so no message is acknowledged on such a
// file (a removal between this stat and the answer is the window left).
func (s *FileStore) stillOpened() error {
	fi, err := os.Stat(s.db.Path())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if !os.SameFile(fi, s.opened) {
		return fmt.Errorf("%w: %s was replaced or removed since it was opened", ErrUnavailable, s.db.Path())
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
