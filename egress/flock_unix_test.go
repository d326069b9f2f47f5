//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package egress

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"
)

// TestRefreshWaitsForAnotherProcess: another process (here: another open
// file description, which flock(2) treats alike) holds FILE.lock while it
// refreshes. This process sends nothing until the lock is released, then
// refreshes with what the file holds.
func TestRefreshWaitsForAnotherProcess(t *testing.T) {
	srv, o := authFixture(t)
	authorized(t, o)
	other, err := os.OpenFile(o.RefreshTokenFile+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := syscall.Flock(int(other.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	n := srv.Requests()
	res := refreshAsync(context.Background(), NewRefreshGrant(o))
	select {
	case r := <-res:
		t.Fatalf("refreshed while another process held the lock: %v", r.err)
	case <-time.After(time.Second):
	}
	if srv.Requests() != n {
		t.Fatal("a refresh request was sent while another process held the lock")
	}
	_ = syscall.Flock(int(other.Fd()), syscall.LOCK_UN)
	if r := waitFor(t, res, "the refresh after the other process let go"); r.err != nil || srv.ReuseDetected() != 0 {
		t.Fatalf("refresh: %v, reuse detected %d", r.err, srv.ReuseDetected())
	}
}
