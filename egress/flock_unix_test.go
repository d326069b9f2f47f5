//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package egress

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// helperEnv makes TestHelperProcess act: the test binary run again is
// a second tokengate process refreshing with the same file.
const helperEnv = "TOKENGATE_EGRESS_HELPER"

// TestHelperProcess is the second process of TestRefreshLockFollowsSymlinks
// (it skips otherwise): it refreshes with the refresh token file named in
// TOKENGATE_EGRESS_HELPER_FILE, printing "locking" first and "refreshed"
// or the error at the end.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "refresh" {
		t.Skip("the second process of TestRefreshLockFollowsSymlinks")
	}
	o := AuthCodeOptions{Name: "deployteq",
		Token: TokenOptions{URL: os.Getenv(helperEnv + "_URL"), ClientID: "deployteq-app", ClientSecret: "app-secret", Auth: AuthBasic,
			Scopes: []string{"apps.webhook:execute", "offline_access"}},
		RefreshTokenFile: os.Getenv(helperEnv + "_FILE")}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fmt.Println("locking")
	if _, err := NewRefreshGrant(o).Token(ctx); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("refreshed")
}

// TestRefreshLockFollowsSymlinks: process A names the refresh token file
// rt/dt-rt, process B (this test binary run again) names it through
// rtlink, a symbolic link to rt/dt-rt. While A's refresh is at the
// vendor, B waits for A's lock (the lock file is the resolved file's),
// then refreshes with the token A stored; B's rotated token lands in
// rt/dt-rt (rtlink stays a link), so A's next refresh sends it. The
// vendor never sees a refresh token twice: no reuse, no revoked grant.
func TestRefreshLockFollowsSymlinks(t *testing.T) {
	srv, o := authFixture(t)
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "rt"), 0o700); err != nil {
		t.Fatal(err)
	}
	o.RefreshTokenFile = filepath.Join(dir, "rt", "dt-rt")
	forgetRefreshFile(t, o.RefreshTokenFile)
	authorized(t, o)
	link := filepath.Join(dir, "rtlink")
	if err := os.Symlink(filepath.Join("rt", "dt-rt"), link); err != nil {
		t.Fatal(err)
	}
	arrived, _, release := srv.StallRefreshes()
	defer release()
	a := refreshAsync(context.Background(), NewRefreshGrant(o))
	waitFor(t, arrived, "process A's refresh at the vendor")

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"=refresh", helperEnv+"_URL="+srv.TokenURL(), helperEnv+"_FILE="+link)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	finished := make(chan struct{})
	lines := make(chan string, 64)
	go func() {
		defer close(finished)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // nobody reads this much
			}
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // it has exited unless the test failed
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			t.Error("process B did not exit within 10s of being killed")
		}
	})
	if l := waitFor(t, lines, "process B to start its refresh"); l != "locking" {
		t.Fatalf("process B said %q first, want locking", l)
	}
	select {
	case <-arrived:
		t.Error("process B's refresh reached the vendor while process A's was there: they took different locks")
	case <-time.After(time.Second): // B waits for A's lock, as it should
	}
	release()
	if r := waitFor(t, a, "process A's refresh"); r.err != nil {
		t.Fatalf("process A: %v", r.err)
	}
	var said []string
	deadline := time.After(20 * time.Second)
	for open := true; open; { // lines is closed when process B's output ends
		select {
		case l, ok := <-lines:
			if open = ok; ok {
				said = append(said, l)
			}
		case <-deadline:
			t.Fatalf("process B's output did not end within 20s: %q", said)
		}
	}
	if err := waitFor(t, exited, "process B to exit"); err != nil || !strings.Contains(strings.Join(said, "\n"), "refreshed") {
		t.Fatalf("process B: %v: %s", err, strings.Join(said, "\n"))
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("rtlink is no longer a symbolic link (%v): process B replaced it instead of the file", err)
	}
	if _, err := NewRefreshGrant(o).Token(context.Background()); err != nil {
		t.Fatalf("process A's next refresh: %v", err)
	}
	if srv.ReuseDetected() != 0 || srv.Refreshes() != 3 {
		t.Fatalf("reuse detected %d, refreshes %d; want 0 and 3", srv.ReuseDetected(), srv.Refreshes())
	}
}
