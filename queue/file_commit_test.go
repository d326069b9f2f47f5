package queue

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestGroupCommitOneFailedWriteFailsOnlyItself: a group whose middle
// write fails is rolled back and its other writes are made alone, so
// they succeed and the failed one reports its own error.
func TestGroupCommitOneFailedWriteFailsOnlyItself(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "g.db"), 0o600, nil)
	must(t, err)
	defer db.Close()
	must(t, db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err }))
	c := newCommitter(db, nil, nil)
	defer c.close()
	bad := errors.New("this write fails")
	put := func(k string) func(*bolt.Tx) error {
		return func(tx *bolt.Tx) error { return tx.Bucket([]byte("b")).Put([]byte(k), []byte("v")) }
	}
	group := []commitReq{
		{fn: put("a"), done: make(chan error, 1)},
		{fn: func(tx *bolt.Tx) error { _ = put("ghost")(tx); return bad }, done: make(chan error, 1)},
		{fn: put("c"), done: make(chan error, 1)},
	}
	c.commit(group)
	if err := <-group[0].done; err != nil {
		t.Fatalf("first write: %v", err)
	}
	if err := <-group[1].done; !errors.Is(err, bad) {
		t.Fatalf("failing write: %v, want its own error", err)
	}
	if err := <-group[2].done; err != nil {
		t.Fatalf("third write: %v", err)
	}
	must(t, db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("b"))
		if b.Get([]byte("a")) == nil || b.Get([]byte("c")) == nil {
			t.Error("a write of the group was lost with the failed one")
		}
		if b.Get([]byte("ghost")) != nil {
			t.Error("the failed write's partial change was committed")
		}
		return nil
	}))
	c.close()
	if err := c.do(put("late")); !errors.Is(err, errStoreClosed) {
		t.Fatalf("write after close: %v, want errStoreClosed", err)
	}
}

// TestGroupCommitLingersOnlyWhenBusy: after a commit that had company a
// commit waits for more writes (here they come later and fill a whole
// group); after a lone one it takes what is waiting and goes at once
// (were it to linger, it would take the 30 s linger: the test gives it 10).
func TestGroupCommitLingersOnlyWhenBusy(t *testing.T) {
	c := &committer{reqs: make(chan commitReq), linger: 30 * time.Second}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	req := func() commitReq { return commitReq{done: make(chan error, 1)} }

	quiet := make(chan []commitReq, 1)
	go func() { quiet <- c.gather(req(), false, timer) }()
	select {
	case group := <-quiet:
		if len(group) != 1 {
			t.Fatalf("quiet store: a group of %d, want the lone write", len(group))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("quiet store: the lone write was held back (10s)")
	}

	started := make(chan struct{})
	go func() {
		<-started
		time.Sleep(10 * time.Millisecond) // arrive while the commit lingers, not before
		for range maxGroup - 1 {
			c.reqs <- req()
		}
	}()
	close(started)
	if group := c.gather(req(), true, timer); len(group) != maxGroup {
		t.Fatalf("busy store: a group of %d, want the %d writes that came while it lingered", len(group), maxGroup)
	}
}
