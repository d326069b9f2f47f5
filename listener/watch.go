package listener

import (
	"context"
	"errors"
	"time"

	"github.com/fsnotify/fsnotify"
)

// reloadDebounce merges the burst of file events one change makes (an
// editor's write and rename, a ConfigMap's symlink swap, cert-manager
// writing a certificate and its key).
const reloadDebounce = 150 * time.Millisecond

// WatchFiles calls onChange once per burst of events in dirs that relevant
// accepts (debounced by reloadDebounce), and every poll when poll > 0,
// until ctx ends. It watches directories, not files: editors replace files
// by rename, and Kubernetes swaps a mounted volume's "..data" symlink. The
// error says which directories could not be watched; polling (and the
// directories that could be watched) keep working.
func WatchFiles(ctx context.Context, dirs []string, relevant func(fsnotify.Event) bool, poll time.Duration, onChange func()) error {
	w, err := fsnotify.NewWatcher()
	var events chan fsnotify.Event
	if err == nil {
		var errs []error
		for _, d := range dirs {
			errs = append(errs, w.Add(d))
		}
		err = errors.Join(errs...)
		events = w.Events
		go func() {
			for range w.Errors { // drained so the watcher never blocks
			}
		}()
	}
	go func() {
		if w != nil {
			defer w.Close()
		}
		var tick <-chan time.Time
		if poll > 0 {
			t := time.NewTicker(poll)
			defer t.Stop()
			tick = t.C
		}
		var debounce <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-events:
				if !ok {
					events = nil
					continue
				}
				if relevant(ev) {
					debounce = time.After(reloadDebounce)
				}
			case <-debounce:
				debounce = nil
				onChange()
			case <-tick:
				onChange()
			}
		}
	}()
	return err
}
