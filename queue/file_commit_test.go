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

// TestGroupCommitTakesWhatWaitsAndNoMore: the writes waiting when a
// commit starts share it (up to maxGroup; the rest take the next), and a
// commit never waits for company: a lone write goes at once.
func TestGroupCommitTakesWhatWaitsAndNoMore(t *testing.T) {
	for _, waiting := range []int{0, 1, 31, maxGroup - 1, maxGroup + 10} {
		t.Run(fmt.Sprint(waiting), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := &committer{reqs: make(chan commitReq)}
				for range waiting {
					go func() { c.reqs <- commitReq{done: make(chan error, 1)} }()
				}
				synctest.Wait()     // every writer is blocked handing its write over
				start := time.Now() // the bubble's clock: it moves only if gather waits
				group := c.gather(commitReq{done: make(chan error, 1)})
				if waited := time.Since(start); waited != 0 {
					t.Fatalf("%d writes waiting: the commit waited %s for company", waiting, waited)
				}
				if want := min(waiting+1, maxGroup); len(group) != want {
					t.Fatalf("%d writes waiting: a group of %d, want %d", waiting, len(group), want)
				}
				for range waiting + 1 - len(group) { // the rest: the next commit's
					<-c.reqs
				}
			})
		})
	}
}
