package queue

import (
	"errors"
	"path/filepath"
	"testing"

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
	c := newCommitter(db)
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
