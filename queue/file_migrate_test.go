package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestFileStoreMovesTheEarlierLayout: a store written by earlier versions
// (payloads and records in two buckets; JSON or binary payloads, JSON or
// binary records) opens with every message pending, whole and with its
// progress, across more than one migration step; the old buckets are
// gone and a record without its payload is dropped.
func TestFileStoreMovesTheEarlierLayout(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	must(t, err)
	want := map[string]string{} // id → body
	must(t, db.Update(func(tx *bolt.Tx) error {
		pay, err := tx.CreateBucket(legacyPayload)
		must(t, err)
		idx, err := tx.CreateBucket(legacyIndex)
		must(t, err)
		put := func(m *Message, jsonPayload, jsonRecord bool) {
			p, err := encodePayload(m)
			must(t, err)
			if jsonPayload {
				p, err = json.Marshal(m)
				must(t, err)
			}
			r := record{Route: m.Route, Received: m.Received, Size: int64(len(p)), Progress: m.Progress}
			rv := encodeRecord(r)
			if jsonRecord {
				rv, err = json.Marshal(r)
				must(t, err)
			}
			must(t, pay.Put([]byte(m.ID), p))
			must(t, idx.Put([]byte(m.ID), rv))
			want[m.ID] = string(m.Body)
		}
		put(msg("gh", t0, "json payload, json record"), true, true)
		retried := msg("gh", t0, "binary payload, json record, retried")
		retried.Attempts, retried.Last = 2, &Answer{Status: 503, At: t0}
		put(retried, false, true)
		for i := range 2*migrateBatch + 10 {
			put(msg("gh", t0.Add(time.Duration(i)*time.Microsecond), fmt.Sprintf("binary %d", i)), false, false)
		}
		must(t, idx.Put([]byte(newID(t0)), encodeRecord(record{Route: "gh", Progress: Progress{State: Pending}}))) // no payload
		return pay.Put([]byte(newID(t0)), []byte{payloadV1})                                                       // no record
	}))
	must(t, db.Close())

	s, err := OpenFile(FileOptions{Dir: dir})
	must(t, err)
	stats, err := s.Stats(context.Background())
	must(t, err)
	if len(stats) != 1 || stats[0].Pending != int64(len(want)) {
		t.Fatalf("after the move: %+v, want %d pending", stats, len(want))
	}
	got := lease(t, s, "gh", t0.Add(time.Hour), len(want)+5)
	if len(got) != len(want) {
		t.Fatalf("leased %d, want %d", len(got), len(want))
	}
	for _, m := range got {
		if want[m.ID] != string(m.Body) {
			t.Fatalf("message %s came back with body %q, want %q", m.ID, m.Body, want[m.ID])
		}
		if string(m.Body) == "binary payload, json record, retried" && (m.Attempts != 2 || m.Last == nil || m.Last.Status != 503) {
			t.Fatalf("the retried message lost its progress: %+v", m.Progress)
		}
	}
	must(t, s.Close())

	db, err = bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	must(t, err)
	defer db.Close()
	must(t, db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(legacyIndex) != nil || tx.Bucket(legacyPayload) != nil {
			t.Fatal("the earlier layout's buckets are still there")
		}
		return nil
	}))
}
