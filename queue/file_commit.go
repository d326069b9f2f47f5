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
// messages pay one fsync, and a lone write pays no batching delay (bbolt's
// own Batch waits MaxBatchDelay, 10 ms, for company).
type committer struct {
	db      *bolt.DB
	reqs    chan commitReq // unbuffered: a sender is either taken or told closed
	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once
	fault   func() error // tests: a commit fails while it returns an error
}

type commitReq struct {
	fn   func(*bolt.Tx) error
	done chan error
}

func newCommitter(db *bolt.DB) *committer {
	c := &committer{db: db, reqs: make(chan commitReq), stop: make(chan struct{}), stopped: make(chan struct{})}
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
		var first commitReq
		select {
		case first = <-c.reqs:
		case <-c.stop:
			return
		}
		group := []commitReq{first}
	gather:
		for len(group) < maxGroup {
			select {
			case r := <-c.reqs:
				group = append(group, r)
			default:
				break gather
			}
		}
		c.commit(group)
	}
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
	if err == nil || len(group) == 1 {
		for _, r := range group {
			r.done <- err
		}
		return
	}
	for _, r := range group {
		r.done <- c.db.Update(r.fn)
	}
}

// close stops the committer once the commit running has finished; later
// writes get errStoreClosed.
func (c *committer) close() {
	c.once.Do(func() { close(c.stop) })
	<-c.stopped
}
