package queue

import (
	"errors"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// maxGroup bounds the writes one group commit takes.
const maxGroup = 512

// errStoreClosed answers a write that arrives after Close.
var errStoreClosed = errors.New("queue: store closed")

// committer is the file store's group commit: one goroutine runs every
// write transaction. Writes that arrive while a commit (and its fsync)
// is running wait and then share the next one, so under load many
// messages pay one fsync, and no write waits for company (bbolt's own
// Batch waits MaxBatchDelay, 10 ms): every sender of a queued route is
// waiting on a commit, so a commit that lingered would only add its delay
// to every answer (BenchmarkFileStoreAddAck: 32 writers in a closed loop
// were 2.2× slower with a 3 ms linger, 1.3× with 1 ms).
type committer struct {
	db      *bolt.DB
	reqs    chan commitReq // unbuffered: a sender is either taken or told closed
	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once
	fault   func() error // tests: a commit fails while it returns an error
	// durable, when set, is asked after every commit whether what was
	// committed will be found again (the file is still the store's); if
	// not, the group's writes fail: nothing is acknowledged on it.
	durable func() error
}

type commitReq struct {
	fn   func(*bolt.Tx) error
	done chan error
}

func newCommitter(db *bolt.DB, fault, durable func() error) *committer {
	c := &committer{db: db, reqs: make(chan commitReq), stop: make(chan struct{}), stopped: make(chan struct{}),
		fault: fault, durable: durable}
	go c.run()
	return c
}

// do runs fn in a group commit and returns once that commit is on disk
// (or failed). fn may run twice: in the group, and alone after another
// write of the group failed; it must be idempotent.
func (c *committer) do(fn func(*bolt.Tx) error) error {
	req := commitReq{fn: fn, done: make(chan error, 1)}
	select {
	case c.reqs <- req:
		return <-req.done // the commit is bounded by the disk, not by a caller
	case <-c.stop:
		return errStoreClosed
	}
}

func (c *committer) run() {
	defer close(c.stopped)
	for {
		select {
		case first := <-c.reqs:
			c.commit(c.gather(first))
		case <-c.stop:
			return
		}
	}
}

// gather takes first and the writes already waiting, up to maxGroup:
// those that came while the last commit ran share this one.
func (c *committer) gather(first commitReq) []commitReq {
	group := []commitReq{first}
	for len(group) < maxGroup {
		select {
		case r := <-c.reqs:
			group = append(group, r)
		default:
			return group
		}
	}
	return group
}

// commit writes group in one transaction; when one write fails, the
// transaction is rolled back and each write is made alone, so one bad
// write fails only itself.
func (c *committer) commit(group []commitReq) {
	if c.fault != nil {
		if err := c.fault(); err != nil {
			for _, r := range group {
				r.done <- err
			}
			return
		}
	}
	err := c.db.Update(func(tx *bolt.Tx) error {
		for _, r := range group {
			if err := r.fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil && c.durable != nil {
		if derr := c.durable(); derr != nil {
			for _, r := range group {
				r.done <- derr
			}
			return
		}
	}
	if err == nil || len(group) == 1 {
		for _, r := range group {
			r.done <- err
		}
		return
	}
	for _, r := range group {
		err := c.db.Update(r.fn)
		if err == nil && c.durable != nil {
			err = c.durable()
		}
		r.done <- err
	}
}

// close stops the committer once the commit running has finished; later
// writes get errStoreClosed.
func (c *committer) close() {
	c.once.Do(func() { close(c.stop) })
	<-c.stopped
}
