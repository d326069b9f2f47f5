package queue

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"testing/synctest"
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
	c := newCommitter(db, newApplyQueue(0), nil, nil)
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

// TestGroupCommitTakesWhatWaitsAndNoMore: the writes waiting when a
// commit starts share it (up to maxGroup; the rest take the next); after
// a shared commit it waits for company at most its linger, none once it
// is full; after a lone write (one sender writing in turn) it does not
// wait.
func TestGroupCommitTakesWhatWaitsAndNoMore(t *testing.T) {
	const linger = 500 * time.Microsecond
	for _, c := range []struct {
		waiting, last int
		linger        time.Duration
		wait          time.Duration // the bubble's clock moves only while gather waits
	}{
		{0, 5, 0, 0}, {31, 5, 0, 0}, {maxGroup + 10, 5, 0, 0},
		{0, 5, linger, linger}, {1, 5, linger, linger}, {31, 5, linger, linger},
		{maxGroup - 1, 5, linger, 0}, {maxGroup + 10, 5, linger, 0},
		{0, 1, linger, 0}, {0, 0, linger, 0}, {3, 1, linger, 0},
	} {
		t.Run(fmt.Sprint(c.waiting, "/", c.last, "/", c.linger), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cm := &committer{reqs: make(chan commitReq), linger: c.linger, last: c.last}
				for range c.waiting {
					go func() { cm.reqs <- commitReq{done: make(chan error, 1), sender: true} }()
				}
				synctest.Wait() // every writer is blocked handing its write over
				start := time.Now()
				group := cm.gather(commitReq{done: make(chan error, 1), sender: true})
				if waited := time.Since(start); waited != c.wait {
					t.Fatalf("the commit waited %s for company, want %s", waited, c.wait)
				}
				if want := min(c.waiting+1, maxGroup); len(group) != want {
					t.Fatalf("a group of %d, want %d", len(group), want)
				}
				if cm.last != len(group) {
					t.Fatalf("last = %d after a group of %d", cm.last, len(group))
				}
				for range c.waiting + 1 - len(group) { // the rest: the next commit's
					<-cm.reqs
				}
			})
		})
	}
}

// TestGroupCommitLingerGathersLateWrites: after a shared commit, a write
// that comes within the linger of a commit's first write shares that
// commit.
func TestGroupCommitLingerGathersLateWrites(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cm := &committer{reqs: make(chan commitReq), linger: time.Millisecond, last: 2}
		go func() {
			time.Sleep(300 * time.Microsecond)
			cm.reqs <- commitReq{done: make(chan error, 1), sender: true}
		}()
		if group := cm.gather(commitReq{done: make(chan error, 1), sender: true}); len(group) != 2 {
			t.Fatalf("a group of %d, want the late write in it (2)", len(group))
		}
	})
}

// TestGroupCommitSettlingsWaitForASender: a group of settled attempts
// waits up to settleLinger for a sender's write to share its commit
// (none once it holds settleEnough);
// once one joins, that sender waits no more than a sender's linger (none
// after a lone sender's commit).
func TestGroupCommitSettlingsWaitForASender(t *testing.T) {
	const settle, linger = 2 * time.Millisecond, 500 * time.Microsecond
	for _, c := range []struct {
		name     string
		waiting  int           // settlings waiting beside the first
		senderAt time.Duration // 0: no sender comes
		last     int
		wait     time.Duration
		size     int
	}{
		{"no sender comes", 2, 0, 5, settle, 3},
		{"enough settlings", settleEnough - 1, 0, 5, 0, settleEnough},
		{"one settling short of enough", settleEnough - 2, 0, 5, settle, settleEnough - 1},
		{"a sender after a shared commit", 2, 300 * time.Microsecond, 5, 300*time.Microsecond + linger, 4},
		{"a lone sender", 2, 300 * time.Microsecond, 1, 300 * time.Microsecond, 4},
		{"a sender at the end of the wait", 2, settle - time.Microsecond, 0, settle - time.Microsecond, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cm := &committer{reqs: make(chan commitReq), linger: linger, settleLinger: settle, last: c.last}
				for range c.waiting {
					go func() { cm.reqs <- commitReq{done: make(chan error, 1)} }()
				}
				if c.senderAt > 0 {
					go func() {
						time.Sleep(c.senderAt)
						cm.reqs <- commitReq{done: make(chan error, 1), sender: true}
					}()
				}
				synctest.Wait()
				start := time.Now()
				group := cm.gather(commitReq{done: make(chan error, 1)})
				if waited := time.Since(start); waited != c.wait {
					t.Fatalf("the commit waited %s, want %s", waited, c.wait)
				}
				if len(group) != c.size {
					t.Fatalf("a group of %d, want %d", len(group), c.size)
				}
			})
		})
	}
}
