package queue

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// read loads one message in a transaction.
func read(tx *bolt.Tx, id string) (*Message, error) {
	payload := tx.Bucket(bucketPayload).Get([]byte(id))
	rv := tx.Bucket(bucketIndex).Get([]byte(id))
	if payload == nil || rv == nil {
		return nil, ErrNotFound
	}
	m := &Message{}
	r, err := decodeRecord(rv)
	if err != nil {
		return nil, fmt.Errorf("queue: index entry %q: %w", id, err)
	}
	if err := decodePayload(payload, m); err != nil {
		return nil, err
	}
	m.Progress = r.Progress
	return m, nil
}

// putProgress rewrites a message's record with p.
func putProgress(tx *bolt.Tx, id string, p func(*Progress)) error {
	b := tx.Bucket(bucketIndex)
	rv := b.Get([]byte(id))
	if rv == nil {
		return ErrNotFound
	}
	r, err := decodeRecord(rv)
	if err != nil {
		return fmt.Errorf("queue: index entry %q: %w", id, err)
	}
	p(&r.Progress)
	return b.Put([]byte(id), encodeRecord(r))
}

func deleteMessage(tx *bolt.Tx, id string) error {
	if tx.Bucket(bucketIndex).Get([]byte(id)) == nil {
		return ErrNotFound
	}
	if err := tx.Bucket(bucketPayload).Delete([]byte(id)); err != nil {
		return err
	}
	return tx.Bucket(bucketIndex).Delete([]byte(id))
}
