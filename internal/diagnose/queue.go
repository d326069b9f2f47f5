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
			fmt.Fprintf(out, "queue    file store %s: not created yet (serve creates %s; check creates nothing)\n", dir, queue.FileName)
			return nil
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

// summary counts stored messages over every route.
func summary(st []queue.RouteStats) string {
	var p, d int64
	for _, s := range st {
		p, d = p+s.Pending, d+s.Dead
	}
	return fmt.Sprintf("%d pending, %d dead", p, d)
}
