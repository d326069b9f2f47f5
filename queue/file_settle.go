package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// write runs change on id's entry with its writes serialized: update
// writes the transaction (ErrNotFound when the message is gone), apply
// then updates the index under s.mu.
func (s *FileStore) write(id string, update func(tx *bolt.Tx) error, apply func(e *entry)) error {
	return s.writeOn(id, false, update, apply)
}

// drop is write for a change that removes id's message: its journal
// record, if still queued, is then not written either.
func (s *FileStore) drop(id string, update func(tx *bolt.Tx) error, apply func(e *entry)) error {
	return s.writeOn(id, true, update, apply)
}

// writeOn is write, or drop with drops.
func (s *FileStore) writeOn(id string, drops bool, update func(tx *bolt.Tx) error, apply func(e *entry)) error {
	s.mu.Lock()
	e := s.idx[id]
	s.mu.Unlock()
	if e == nil {
		return ErrNotFound
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gone {
		return ErrNotFound
	}
	if err := s.commits.doOn(id, drops, update); err != nil {
		if errors.Is(err, ErrNotFound) {
			return err
		}
		s.mu.Lock()
		s.unlease(id, e)
		s.mu.Unlock()
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	s.mu.Lock()
	s.dropHot(e) // the stored message changed: the copy would be stale
	apply(e)
	s.mu.Unlock()
	return nil
}

// writeFailedRetry is how soon a message whose attempt's outcome could
// not be written (a full disk) is attempted again.
const writeFailedRetry = 5 * time.Second

// unlease hands a leased entry whose outcome could not be written back to
// the schedule, due a little later: its stored state is what it was, and
// nothing else would ever lease it again in this process. s.mu is held.
func (s *FileStore) unlease(id string, e *entry) {
	if !e.leased || e.gone {
		return
	}
	e.leased = false
	if later := time.Now().Add(writeFailedRetry); e.next.Before(later) {
		e.next = later
	}
	e.gen++
	s.push(id, e)
}

// remove forgets a deleted entry; s.mu is held.
func (s *FileStore) remove(id string, e *entry) {
	s.dropHot(e)
	e.gone = true
	delete(s.idx, id)
	s.bytes -= e.size
}

// Ack removes a delivered message.
func (s *FileStore) Ack(ctx context.Context, m *Message) error {
	return s.drop(m.ID, func(tx *bolt.Tx) error { return deleteMessage(tx, m.ID) },
		func(e *entry) { s.remove(m.ID, e) })
}

// Retry stores m.Progress and makes the message due at m.Next.
func (s *FileStore) Retry(ctx context.Context, m *Message) error {
	p := m.Progress
	p.State = Pending
	return s.write(m.ID, func(tx *bolt.Tx) error { return putProgress(tx, m.ID, func(q *Progress) { *q = p }) },
		func(e *entry) {
			e.state, e.next, e.leased = Pending, p.Next, false
			e.gen++
			s.push(m.ID, e)
		})
}

// Bury stores m.Progress and makes the message a dead letter.
func (s *FileStore) Bury(ctx context.Context, m *Message) error {
	p := m.Progress
	p.State = Dead
	return s.write(m.ID, func(tx *bolt.Tx) error { return putProgress(tx, m.ID, func(q *Progress) { *q = p }) },
		func(e *entry) {
			e.state, e.leased = Dead, false
			e.gen++
		})
}

// Revive makes a dead letter pending with p, or a pending message that is
// not leased due at p.Next.
func (s *FileStore) Revive(ctx context.Context, id string, p Progress) error {
	s.mu.Lock()
	e := s.idx[id]
	leased := e != nil && e.leased
	s.mu.Unlock()
	if leased {
		return nil
	}
	return s.write(id, func(tx *bolt.Tx) error {
		return putProgress(tx, id, func(q *Progress) {
			if q.State == Dead {
				*q = p
			} else {
				q.Next = p.Next
			}
			q.State = Pending
		})
	}, func(e *entry) {
		if e.leased { // leased since: the attempt's outcome will be written
			return
		}
		e.state, e.next = Pending, p.Next
		e.gen++
		s.push(id, e)
	})
}

// Drop removes a message, whatever its state.
func (s *FileStore) Drop(ctx context.Context, id string) error {
	return s.drop(id, func(tx *bolt.Tx) error { return deleteMessage(tx, id) },
		func(e *entry) { s.remove(id, e) })
}
