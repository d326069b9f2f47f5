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

// checkQueueStore opens the queue store once queued routes need it and
// says what it holds: a file store read-only (check writes nothing into
// it: opening it as serve does converts an earlier version's layout),
// Redis as serve would. A file store a running gate holds is fine: the
// gate answers on its control socket (or holds the lock).
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
		// Only a store that exists is opened: opening creates (directories
		// and a file, or the database in an empty queue.db a failed serve
		// left), and check creates nothing.
		fi, err := os.Lstat(filepath.Join(dir, queue.FileName))
		switch {
		case errors.Is(err, fs.ErrNotExist) || (err == nil && fi.Mode().IsRegular() && fi.Size() == 0):
			return notCreated(out, dir, int64(cfg.Queue.MaxBytes))
		case err != nil:
			return []string{fmt.Sprintf("queue.store: %v", err)}
		}
		return inspected(out, dir)
	}
	store, err := queue.OpenFromConfig(cfg) // Redis: nothing locks it
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
