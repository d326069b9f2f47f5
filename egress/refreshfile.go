package egress

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// refreshFile is the process-wide state of one refresh token file. Every
// RefreshGrant naming the file shares it: a reload builds a new grant for
// the same file while the old grant's refresh may still be at the
// server, and the two must never send the same refresh token (a server
// with reuse detection revokes the whole grant).
type refreshFile struct {
	path string // "" for a shared entry without a file
	// id names this process as the spender of a shared refresh token.
	id string
	// sem is held for a whole refresh: read the file, ask the server,
	// store the rotated token. Also held to store a new consent.
	sem chan struct{}
	// pending, spent, refused and store are guarded by sem.
	pending string // rotated by the server, not yet stored
	spent   string // the refresh token pending replaced
	refused string // refused by the server (invalid_grant)
	prev    string // the refresh token this process rotated away last: hidden from error texts like the current one
	// store writes pending (the grant's WriteFile), for DrainRefreshes;
	// storeErr is why it could not be written last.
	store    func(string) error
	storeErr error
	// run is the refresh under way, nil if none; guarded by
	// refreshFiles' mutex.
	run *refreshRun
	// Shared entries, guarded by sem: pendingCommit writes pending to
	// Redis; memo is what this process knows of the shared refresh token
	// (sharedmemo.go), memoDisk the sidecar's content as last read or
	// written, held the newest token this process stored (memo.Held).
	pendingCommit func(context.Context) error
	memo          sharedMemo
	memoDisk      []byte
	held          string
	// seenMax is the highest generation seen in a shared access token
	// (noted without sem; knowledge merges it).
	seenMax atomic.Uint64
}

// refreshRun is one refresh from the moment it may reach the server
// until its rotated token is stored (or could not be).
type refreshRun struct {
	done     chan struct{} // closed at the end
	until    time.Time     // its own bound: the token timeout
	log      *zap.Logger
	unstored error // set before done is closed: why a rotated token is only in memory
}

var refreshFiles = struct {
	sync.Mutex
	m map[string]*refreshFile
	// epoch counts DrainRefreshes calls. A grant made before the last
	// one starts no refresh: the process is about to exit, and a refresh
	// started now could be cut off after the vendor rotated the token.
	// (Grants made afterwards belong to a new start: in tests, or an
	// embedding program that serves again.)
	epoch uint64
}{m: map[string]*refreshFile{}}

// errShuttingDown: a refresh not yet started when shutdown began is not
// started (it could not finish before the process exits).
var errShuttingDown = errors.New("shutting down: no refresh starts now; nothing was sent")

// begin marks a refresh of f as under way, bounded by timeout, for a
// grant made in epoch; the holder of f.sem calls it before anything is
// sent, and end(run) when the rotated token is stored or could not be.
func (f *refreshFile) begin(epoch uint64, log *zap.Logger, timeout time.Duration) (*refreshRun, error) {
	refreshFiles.Lock()
	defer refreshFiles.Unlock()
	if epoch != refreshFiles.epoch {
		return nil, errShuttingDown
	}
	f.run = &refreshRun{done: make(chan struct{}), until: time.Now().Add(timeout), log: log}
	return f.run, nil
}

// end closes run; f.sem is still held.
func (f *refreshFile) end(run *refreshRun) {
	if f.pending != "" {
		run.unstored = f.storeErr
		if run.unstored == nil {
			run.unstored = errors.New("not written")
		}
	}
	refreshFiles.Lock()
	f.run = nil
	refreshFiles.Unlock()
	close(run.done)
}

// refreshFileFor returns the state of path, keyed by resolvePath(path):
// every spelling of one file (relative, through a linked directory, a
// symbolic link to the file itself) shares one in-process lock and one
// lock file, in this process and in any other. Without a path, key
// names the state (a shared entry without a file).
func refreshFileFor(path, key string) *refreshFile {
	if path != "" {
		path = resolvePath(path)
		key = path
	}
	refreshFiles.Lock()
	defer refreshFiles.Unlock()
	f := refreshFiles.m[key]
	if f == nil {
		var id [12]byte
		_, _ = rand.Read(id[:])
		f = &refreshFile{path: path, id: hex.EncodeToString(id[:]), sem: make(chan struct{}, 1)}
		refreshFiles.m[key] = f
	}
	return f
}

// maxLinks bounds the symbolic links followed (Linux's own limit is 40).
const maxLinks = 40

// resolvePath is path made absolute and clean with every symbolic link
// resolved, the file's own included — even one whose target does not
// exist yet (a link made before `tokengate authorize` wrote the file).
// Where nothing can be resolved the clean absolute path remains.
func resolvePath(path string) string {
	p, err := filepath.Abs(path)
	if err != nil {
		p = filepath.Clean(path)
	}
	for range maxLinks {
		if dir, err := filepath.EvalSymlinks(filepath.Dir(p)); err == nil {
			p = filepath.Join(dir, filepath.Base(p))
		}
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			return p
		}
		target, err := os.Readlink(p)
		if err != nil {
			return p
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(p), target)
		}
		p = filepath.Clean(target)
	}
	return p
}

// lock takes the file for one refresh (or one store): first in this
// process, then, where the platform has flock(2), across processes
// through a lock file next to the resolved file (its path + ".lock"). Waiting ends with ctx;
// holding does not. A lock file that cannot be opened (a read-only
// directory, where no rotated token could be stored either) leaves the
// in-process lock alone in charge.
func (f *refreshFile) lock(ctx context.Context) (release func(), err error) {
	select {
	case f.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if f.path == "" {
		return func() { <-f.sem }, nil
	}
	unlockFile, err := lockFile(ctx, f.path+".lock")
	if err != nil {
		<-f.sem
		return nil, err
	}
	return func() {
		unlockFile()
		<-f.sem
	}, nil
}

// drain returns once no refresh of f is under way in this process, or
// when ctx ends and none is at the server; a refresh at the server when
// ctx ends is waited for until it ends by itself (its token timeout).
// It reports a rotated refresh token that could not be stored.
func (f *refreshFile) drain(ctx context.Context) error {
	if f.acquire(ctx) {
		defer func() { <-f.sem }()
		return f.storePending()
	}
	refreshFiles.Lock()
	run := f.run
	refreshFiles.Unlock()
	if run == nil {
		return nil // the holder has sent nothing and now sends nothing (an old epoch's)
	}
	run.log.Warn("shutdown waits past shutdown_grace for a refresh token refresh at the vendor: the vendor has rotated the refresh token, and the new one must be stored (sent again, the spent one makes the vendor revoke the grant)",
		zap.String("refresh_token_file", f.path), zap.Duration("at_most", time.Until(run.until).Round(time.Millisecond)))
	<-run.done
	if run.unstored != nil {
		return f.notStored(run.unstored)
	}
	return nil
}

// acquire takes f.sem, waiting until ctx ends; a free f.sem is taken
// even when ctx has already ended.
func (f *refreshFile) acquire(ctx context.Context) bool {
	select {
	case f.sem <- struct{}{}:
		return true
	default:
	}
	select {
	case f.sem <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// storePending writes a rotated token kept in memory after a failed
// write, unless a new consent replaced the file meanwhile; f.sem is held.
func (f *refreshFile) storePending() error {
	if f.pendingCommit != nil {
		if err := f.pendingCommit(context.Background()); err != nil {
			return f.notStored(err)
		}
		return nil
	}
	if b, err := os.ReadFile(f.path); err == nil {
		if rt := strings.TrimSpace(string(b)); rt != "" && rt != f.spent {
			f.pending = ""
		}
	}
	if f.pending == "" || f.store == nil {
		return nil
	}
	if err := f.store(f.pending); err != nil {
		return f.notStored(err)
	}
	f.pending = ""
	return nil
}

func (f *refreshFile) notStored(err error) error {
	return fmt.Errorf("the vendor rotated the refresh token of %s and the new one could not be stored (%w): the next start sends the spent one, which a vendor with reuse detection refuses; run `tokengate authorize` for the entry", f.path, err)
}

// DrainRefreshes waits until no refresh of any refresh token file is
// under way in this process, each one's rotated token stored. Shutdown
// calls it after stopping every Source, with the shutdown grace as ctx.
// From its call on, no grant made before it starts a refresh (one started
// now could be cut off by the exit once the vendor has rotated the
// token; it fails at once, sending nothing). A refresh that reached the server is
// waited for even after ctx ends, until it ends by itself (within its
// token timeout; a Warn line says so): the server has rotated the
// refresh token, and the process must not exit before the new one is
// stored. It returns an error only when a rotated refresh token could not
// be stored.
func DrainRefreshes(ctx context.Context) error {
	refreshFiles.Lock()
	refreshFiles.epoch++
	files := make([]*refreshFile, 0, len(refreshFiles.m))
	for _, f := range refreshFiles.m {
		files = append(files, f)
	}
	refreshFiles.Unlock()
	var errs []error
	for _, f := range files {
		if err := f.drain(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
