package queue

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// joinValue is a message as the file store keeps it: its record
// (length-prefixed), then its payload. Opening the store reads only the
// records.
func joinValue(rec, payload []byte) []byte {
	b := make([]byte, 0, binary.MaxVarintLen64+len(rec)+len(payload))
	return append(appendBytes(b, rec), payload...)
}

// splitValue is joinValue's inverse; both parts point into v.
func splitValue(v []byte) (rec, payload []byte, err error) {
	r := reader{b: v}
	rec = r.bytes()
	if r.err != nil {
		return nil, nil, errCorrupt
	}
	return rec, r.b, nil
}

// decodeValue reads a stored value's record and returns its payload
// (pointing into v), naming id in errors.
func decodeValue(id string, v []byte) (record, []byte, error) {
	rv, payload, err := splitValue(v)
	if err != nil {
		return record{}, nil, fmt.Errorf("queue: stored message %q: %w", id, err)
	}
	r, err := decodeRecord(rv)
	if err != nil {
		return record{}, nil, fmt.Errorf("queue: index entry %q: %w", id, err)
	}
	return r, payload, nil
}

// read loads one message in a transaction.
func read(tx *bolt.Tx, id string) (*Message, error) { return readInto(tx, id, true) }

// readInto loads one message, its head and body only if whole.
func readInto(tx *bolt.Tx, id string, whole bool) (*Message, error) {
	v := tx.Bucket(bucketMessages).Get([]byte(id))
	if v == nil {
		return nil, ErrNotFound
	}
	return decodeStored(id, v, whole)
}

// decodeStored is the message a stored value holds, its head and body
// only if whole.
func decodeStored(id string, v []byte, whole bool) (*Message, error) {
	r, payload, err := decodeValue(id, v)
	if err != nil {
		return nil, err
	}
	m := &Message{}
	if err := decodePayloadInto(payload, m, whole); err != nil {
		return nil, err
	}
	m.Progress = r.Progress
	return m, nil
}

// putProgress rewrites a message's record with p (its payload unchanged).
func putProgress(tx *bolt.Tx, id string, p func(*Progress)) error {
	b := messages(tx)
	v := b.Get([]byte(id))
	if v == nil {
		return ErrNotFound
	}
	r, payload, err := decodeValue(id, v)
	if err != nil {
		return err
	}
	p(&r.Progress)
	return b.Put([]byte(id), joinValue(encodeRecord(r), payload))
}

// deleteMessage removes id's message, found by one search of the tree
// (a Get, then a Delete, searched it twice).
func deleteMessage(tx *bolt.Tx, id string) error {
	c := messages(tx).Cursor()
	if k, _ := c.Seek([]byte(id)); string(k) != id {
		return ErrNotFound
	}
	return c.Delete()
}
