package queue

import (
	"time"

	bolt "go.etcd.io/bbolt"
)

// write writes group (writeGroup), unless a test's fault fails it.
func (c *committer) write(group []commitReq) (alone []error, all error) {
	if len(group) == 0 && (c.apply == nil || c.apply.pending() == 0) {
		c.flushAsked.Store(false)
		return nil, nil // a kick or a timer, and nothing left to write
	}
	if c.fault != nil {
		if err := c.fault(); err != nil {
			if c.apply != nil && c.apply.pending() > 0 {
				c.apply.done(nil, err)
			}
			return nil, err
		}
	}
	return c.writeGroup(group)
}

// writeTx writes into the store file, in one transaction, the journal's
// records not yet in it and then group, and returns its error (all).
// When that fails, the records are written alone (if that fails too,
// every write of the group fails: none would find its message), then
// each write alone, so one bad write fails only itself: then alone holds
// each write's error.
func (c *committer) writeTx(group []commitReq) (alone []error, all error) {
	flush := c.flushAsked.Swap(false)
	var changed map[string]bool // the messages the group changes: do they remove them?
	for _, r := range group {
		flush = flush || r.flush
		if r.id != "" {
			if changed == nil {
				changed = map[string]bool{}
			}
			changed[r.id] = r.drops
		}
	}
	dropped := map[string]bool{} // queued records the group removes: neither is written
	recs := c.apply.take(flush, time.Now().Add(-applyAfter), func(id string) bool {
		drops, ok := changed[id]
		if drops {
			dropped[id] = true
		}
		return ok
	})
	if len(group) == 0 && len(recs) == 0 {
		return nil, nil
	}
	err := c.recordsFault(recs)
	if err == nil {
		err = c.update(func(tx *bolt.Tx) error {
			if err := putRecords(tx, recs, dropped); err != nil {
				return err
			}
			for _, r := range group {
				if r.drops && dropped[r.id] {
					continue
				}
				if err := r.fn(tx); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err == nil {
		c.apply.done(recs, nil)
		return nil, nil
	}
	if len(recs) > 0 {
		err := c.recordsFault(recs)
		if err == nil {
			err = c.update(func(tx *bolt.Tx) error { return putRecords(tx, recs, nil) })
		}
		c.apply.done(recs, err)
		if err != nil {
			return c.writeWithout(group, recs, err), nil
		}
	} else if len(group) == 1 {
		return nil, err
	}
	alone = make([]error, len(group))
	for i, r := range group {
		alone[i] = c.update(r.fn)
	}
	return alone, nil
}

// writeWithout makes alone each write of group on a message the store
// file already holds (removing one may free the pages the records need),
// and fails the others, and those on no message (a flush, a check), with
// err: the journal's records, recs, could not be written.
func (c *committer) writeWithout(group []commitReq, recs []*journalRecord, err error) []error {
	unwritten := map[string]bool{}
	for _, r := range recs {
		unwritten[r.id] = true
	}
	alone := make([]error, len(group))
	for i, r := range group {
		if r.id == "" || unwritten[r.id] {
			alone[i] = err
			continue
		}
		alone[i] = c.update(r.fn)
	}
	return alone
}

// recordsFault is the test's recordFault for a commit that writes recs.
func (c *committer) recordsFault(recs []*journalRecord) error {
	if c.recordFault == nil || len(recs) == 0 {
		return nil
	}
	return c.recordFault()
}

// update commits fn and asks durable whether it will be found again.
func (c *committer) update(fn func(*bolt.Tx) error) error {
	err := c.db.Update(fn)
	if err == nil && c.durable != nil {
		err = c.durable()
	}
	return err
}
