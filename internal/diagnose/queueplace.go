package diagnose

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/queue"
)

// notCreated checks, creating nothing, that serve could create the file
// store in dir: the nearest directory that exists on its path is one (not
// a file, not a symbolic link to nothing) that this process may write,
// the store's directory, if it exists, is one OpenFile accepts, and its
// disk has room and inodes for the store's first message (a full disk, a
// read-only mount, a world-writable directory or a dangling link was "not
// created yet" and no problem, and serve then failed or answered every
// queued message 503).
func notCreated(out io.Writer, dir string, maxBytes int64) []string {
	cant := func(format string, args ...any) []string {
		return []string{fmt.Sprintf("queue.store: %s cannot be created: ", dir) + fmt.Sprintf(format, args...)}
	}
	dir = filepath.Clean(dir)
	base, missing := dir, 0
	for {
		fi, err := os.Lstat(base)
		if err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			if fi, err = os.Stat(base); err != nil {
				return cant("%s is a symbolic link to a path that does not exist", base)
			}
		}
		if err == nil && !fi.IsDir() {
			return cant("%s is not a directory", base)
		}
		if err == nil {
			break
		}
		up := filepath.Dir(base)
		if !errors.Is(err, fs.ErrNotExist) || up == base {
			return cant("%v", err)
		}
		base, missing = up, missing+1
	}
	if missing == 0 {
		if err := queue.CheckPlace(dir); err != nil {
			return []string{fmt.Sprintf("queue.store: %v", err)}
		}
	}
	if err := mayCreateIn(base); err != nil {
		return cant("%s is not writable: %v", base, err)
	}
	line := fmt.Sprintf("queue    file store %s: not created yet (serve creates %s and %s; check creates nothing)", dir, queue.FileName, queue.JournalName)
	if room, inodes := diskRoom(base); room >= 0 {
		if need := int64(queue.DiskReserve + config.MessageOverhead); room < need {
			return []string{fmt.Sprintf("queue.store: the disk holding %s has %s free; the store needs at least %s (it keeps %s free so that deliveries can be recorded)", dir, mib(room), mib(need), mib(queue.DiskReserve))}
		}
		if need := int64(missing + 1); inodes >= 0 && inodes < need {
			return []string{fmt.Sprintf("queue.store: the disk holding %s has %d free inodes; the store needs %d", dir, inodes, need)}
		}
		line += fmt.Sprintf(", %s free on its disk", mib(room))
		if room < maxBytes {
			line += fmt.Sprintf(", less than queue.max_bytes (%s): once the disk is full, queued routes answer 503", mib(maxBytes))
		}
	}
	fmt.Fprintln(out, line+socketTooLong(dir))
	return nil
}

// maxSocketPath is the longest path a unix socket takes: sun_path holds
// 108 bytes with its NUL on Linux, 104 on darwin and the BSDs.
func maxSocketPath() int {
	if runtime.GOOS == "linux" {
		return 107
	}
	return 103
}

// socketTooLong warns when the control socket's path in dir is longer
// than a unix socket takes: serve then runs without it (a warning in its
// log), and `tokengate queue` cannot reach the running gate (an outside
// attack: check said OK, and queue commands said the store was in use).
func socketTooLong(dir string) string {
	if p := filepath.Join(dir, queue.ControlSocket); len(p) > maxSocketPath() {
		return fmt.Sprintf("\n         warning: %s is %d bytes, longer than a unix socket's path (%d): serve runs without its control socket, and `tokengate queue` cannot reach the running gate", p, len(p), maxSocketPath())
	}
	return ""
}

// inspected says what the file store in dir holds, read without writing
// (queue.InspectFile), and whether this process may write it.
func inspected(out io.Writer, dir string) []string {
	sum, err := queue.InspectFile(dir, time.Second)
	if errors.Is(err, queue.ErrInUse) {
		fmt.Fprintf(out, "queue    file store %s: in use by a running gate\n", dir)
		return nil
	}
	if err != nil {
		return []string{fmt.Sprintf("queue.store: %v", err)}
	}
	journal := filepath.Join(dir, queue.JournalName)
	for _, p := range []struct {
		path string
		may  func(string) error
	}{{dir, mayCreateIn}, {filepath.Join(dir, queue.FileName), mayWrite}, {journal, mayWrite}} {
		if _, err := os.Lstat(p.path); p.path == journal && errors.Is(err, os.ErrNotExist) {
			continue // an earlier version's store: serve creates it
		}
		if err := p.may(p.path); err != nil {
			return []string{fmt.Sprintf("queue.store: %s is not writable: %v", p.path, err)}
		}
	}
	what := "writable (" + summary(sum.Stats) + ")"
	if sum.Earlier {
		what = "writable; an earlier version's layout: serve converts it when it opens it, and earlier versions do not read the converted file"
	}
	line := fmt.Sprintf("queue    file store %s: %s", dir, what)
	if room, _ := diskRoom(dir); room >= 0 && room < queue.DiskReserve {
		line += fmt.Sprintf("; only %s free on its disk, less than the %s of room the store keeps: queued routes answer 503 unless queue.db's free pages make up the rest", mib(room), mib(queue.DiskReserve))
	}
	fmt.Fprintln(out, line+socketTooLong(dir))
	return nil
}
