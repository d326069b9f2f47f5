package queue

import (
	"bytes"

	bolt "go.etcd.io/bbolt"
)

// The file store's earlier layout: payloads and records in two buckets
// under the same ids.
var (
	legacyPayload = []byte("payload")
	legacyIndex   = []byte("index")
)

// migrateBatch bounds the messages one migration transaction moves, so a
// large store is moved in steps of bounded memory.
const migrateBatch = 1024

// migrate moves messages stored in the earlier layout into
// bucketMessages, each whole in one transaction (a crash leaves every
// message in one layout or the other, never both or neither), and then
// removes the old buckets. A record without its payload, which the
// earlier layout could never deliver, is dropped.
func migrate(db *bolt.DB) error {
	for {
		done := false
		err := db.Update(func(tx *bolt.Tx) error {
			idx, pay := tx.Bucket(legacyIndex), tx.Bucket(legacyPayload)
			if idx == nil && pay == nil {
				done = true
				return nil
			}
			msgs, err := tx.CreateBucketIfNotExists(bucketMessages)
			if err != nil {
				return err
			}
			msgs.FillPercent = messagesFill
			if idx != nil {
				c := idx.Cursor()
				n := 0
				for k, v := c.First(); k != nil && n < migrateBatch; k, v = c.First() {
					id := bytes.Clone(k)
					if p := bucketGet(pay, id); p != nil {
						if err := msgs.Put(id, joinValue(v, p)); err != nil {
							return err
						}
					}
					if err := c.Delete(); err != nil {
						return err
					}
					if pay != nil {
						if err := pay.Delete(id); err != nil {
							return err
						}
					}
					n++
				}
				if n == migrateBatch {
					return nil // more in the next transaction
				}
				if err := tx.DeleteBucket(legacyIndex); err != nil {
					return err
				}
			}
			if pay != nil {
				if err := tx.DeleteBucket(legacyPayload); err != nil { // payloads without a record: never deliverable
					return err
				}
			}
			done = true
			return nil
		})
		if err != nil || done {
			return err
		}
	}
}

func bucketGet(b *bolt.Bucket, k []byte) []byte {
	if b == nil {
		return nil
	}
	return b.Get(k)
}
