package egress

import (
	"context"
	"os"
	"path/filepath"
	"sync"
)

// refreshFile is the process-wide state of one refresh token file. Every
// RefreshGrant naming the file shares it: a reload builds a new grant for
// the same file while the old grant's refresh may still be at the
// server, and the two must never send the same refresh token (a server
// with reuse detection revokes the whole grant).
type refreshFile struct {
	path string
	// sem is held for a whole refresh: read the file, ask the server,
	// store the rotated token. Also held to store a new consent.
	sem chan struct{}
	// pending and refused are guarded by sem.
	pending string // rotated by the server, not yet stored
	spent   string // the refresh token pending replaced
	refused string // refused by the server (invalid_grant)
}

var refreshFiles = struct {
	sync.Mutex
	m map[string]*refreshFile
}{m: map[string]*refreshFile{}}

// refreshFileFor returns the state of path, keyed by resolvePath(path):
// every spelling of one file (relative, through a linked directory, a
// symbolic link to the file itself) shares one in-process lock and one
// lock file, in this process and in any other.
func refreshFileFor(path string) *refreshFile {
	key := resolvePath(path)
	refreshFiles.Lock()
	defer refreshFiles.Unlock()
	f := refreshFiles.m[key]
	if f == nil {
		f = &refreshFile{path: key, sem: make(chan struct{}, 1)}
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

// wait returns once no refresh of the file is in flight in this process,
// or when ctx ends.
func (f *refreshFile) wait(ctx context.Context) error {
	select {
	case f.sem <- struct{}{}:
		<-f.sem
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// DrainRefreshes waits until no refresh of any refresh token file is in
// flight in this process (each one's rotated token is stored), or ctx
// ends. Shutdown calls it after stopping every Source: a refresh already
// at the server always finishes and stores what the server rotated.
func DrainRefreshes(ctx context.Context) error {
	refreshFiles.Lock()
	files := make([]*refreshFile, 0, len(refreshFiles.m))
	for _, f := range refreshFiles.m {
		files = append(files, f)
	}
	refreshFiles.Unlock()
	for _, f := range files {
		if err := f.wait(ctx); err != nil {
			return err
		}
	}
	return nil
}
