package queue

import (
	"errors"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestDeleteMessageRemovesOnlyItsOwn: deleteMessage finds its key with
// one cursor seek, which lands on the next key when its own is missing;
// that neighbour must be left alone and the answer be ErrNotFound.
func TestDeleteMessageRemovesOnlyItsOwn(t *testing.T) {
	cases := []struct {
		name, id string
		err      error
		left     []string
	}{
		{"its own, in the middle", "b", nil, []string{"a", "c"}},
		{"the first", "a", nil, []string{"b", "c"}},
		{"the last", "c", nil, []string{"a", "b"}},
		{"missing, before the first", "0", ErrNotFound, []string{"a", "b", "c"}},
		{"missing, between two", "bb", ErrNotFound, []string{"a", "b", "c"}},
		{"missing, a prefix of one", "", ErrNotFound, []string{"a", "b", "c"}},
		{"missing, after the last", "d", ErrNotFound, []string{"a", "b", "c"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db, err := bolt.Open(filepath.Join(t.TempDir(), "d.db"), 0o600, nil)
			must(t, err)
			defer db.Close()
			must(t, db.Update(func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket(bucketMessages)
				for _, k := range []string{"a", "b", "c"} {
					err = errors.Join(err, b.Put([]byte(k), []byte("v")))
				}
				return err
			}))
			if err := db.Update(func(tx *bolt.Tx) error { return deleteMessage(tx, c.id) }); !errors.Is(err, c.err) {
				t.Fatalf("deleteMessage(%q) = %v, want %v", c.id, err, c.err)
			}
			var left []string
			must(t, db.View(func(tx *bolt.Tx) error {
				return tx.Bucket(bucketMessages).ForEach(func(k, _ []byte) error { left = append(left, string(k)); return nil })
			}))
			if len(left) != len(c.left) {
				t.Fatalf("left %q, want %q", left, c.left)
			}
			for i := range left {
				if left[i] != c.left[i] {
					t.Fatalf("left %q, want %q", left, c.left)
				}
			}
		})
	}
}
