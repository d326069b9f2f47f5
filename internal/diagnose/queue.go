package diagnose

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/queue"
)

// checkQueueStore opens the queue store once queued routes need it, as
// serve would, and says what it holds. A file store a running gate holds
// is fine: the gate answers on its control socket (or holds the lock).
func checkQueueStore(ctx context.Context, cfg *config.Config, out io.Writer) []string {
	if !cfg.QueuedRoutes() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if dir, ok := cfg.Queue.FileDir(); ok {
		c := queue.DialControl(dir)
		defer c.Close()
		if st, err := c.Stats(ctx); err == nil {
			fmt.Fprintf(out, "queue    file store %s: in use by a running gate (%s)\n", dir, summary(st))
			return nil
		}
	}
	if dir, ok := cfg.Queue.FileDir(); ok {
		if _, err := os.Lstat(filepath.Join(dir, queue.FileName)); errors.Is(err, fs.ErrNotExist) {
			return notCreated(out, dir, int64(cfg.Queue.MaxBytes))
		}
	}
	store, err := queue.OpenFromConfig(cfg)
	if errors.Is(err, queue.ErrInUse) {
		fmt.Fprintf(out, "queue    %s: in use by a running gate\n", config.RedactedURL(cfg.Queue.Store))
		return nil
	}
	if err != nil {
		return []string{fmt.Sprintf("queue.store: %v", err)}
	}
	defer store.Close()
	if c, ok := store.(queue.Checker); ok {
		if err := c.Check(ctx); err != nil {
			return []string{fmt.Sprintf("queue.store: cannot be written: %v", err)}
		}
	}
	st, err := store.Stats(ctx)
	if err != nil {
		return []string{fmt.Sprintf("queue.store: %v", err)}
	}
	fmt.Fprintf(out, "queue    %s: writable (%s)\n", config.RedactedURL(cfg.Queue.Store), summary(st))
	return nil
}

// notCreated checks, creating nothing, that serve could create the file
// store in dir: the nearest directory that exists on its path may be
// written by this process, and its disk has room for the store's first
// message (a full disk or a read-only mount was "not created yet" and no
// problem, and serve then answered every queued message 503).
func notCreated(out io.Writer, dir string, maxBytes int64) []string {
	base := dir
	for {
		_, err := os.Stat(base) // the first that exists is a directory: else Lstat above said ENOTDIR
		if err == nil {
			break
		}
		up := filepath.Dir(base)
		if !errors.Is(err, fs.ErrNotExist) || up == base {
			return []string{fmt.Sprintf("queue.store: %s cannot be created: %v", dir, err)}
		}
		base = up
	}
	if err := mayCreateIn(base); err != nil {
		return []string{fmt.Sprintf("queue.store: %s cannot be created: %s is not writable: %v", dir, base, err)}
	}
	line := fmt.Sprintf("queue    file store %s: not created yet (serve creates %s; check creates nothing)", dir, queue.FileName)
	if room := diskRoom(base); room >= 0 {
		if room < int64(config.MessageOverhead) {
			return []string{fmt.Sprintf("queue.store: the disk holding %s has %s free; the store needs at least %s", dir, mib(room), mib(int64(config.MessageOverhead)))}
		}
		line += fmt.Sprintf(", %s free on its disk", mib(room))
		if room < maxBytes {
			line += fmt.Sprintf(", less than queue.max_bytes (%s): once the disk is full, queued routes answer 503", mib(maxBytes))
		}
	}
	fmt.Fprintln(out, line)
	return nil
}

// mib writes n bytes in MiB.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// summary counts stored messages over every route.
func summary(st []queue.RouteStats) string {
	var p, d int64
	for _, s := range st {
		p, d = p+s.Pending, d+s.Dead
	}
	return fmt.Sprintf("%d pending, %d dead", p, d)
}
