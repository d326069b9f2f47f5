//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package egress

import (
	"context"
	"errors"
	"os"
	"syscall"
	"time"
)

// lockPoll is how often a lock file held by another process is tried.
const lockPoll = 50 * time.Millisecond

// lockFile takes an exclusive flock(2) on path, trying every lockPoll
// until ctx ends: another tokengate process (a second replica on the same
// volume, or `tokengate authorize`) may be refreshing with the same file.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f := openLockFile(path)
	if f == nil {
		return func() {}, nil
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = f.Close() }, nil // closing releases the lock
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			_ = f.Close()
			return func() {}, nil // no flock on this file system: the in-process lock remains
		}
		t := time.NewTimer(lockPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			_ = f.Close()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// openLockFile opens (or creates, mode 0600) a lock file; nil when it
// cannot be.
func openLockFile(path string) *os.File {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil
	}
	return f
}
