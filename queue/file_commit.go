package queue

import (
	"errors"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// maxGroup bounds the writes one group commit takes.
const maxGroup = 512

// commitLinger is how long a commit waits for company while the store is
// busy: under load it halves the commits (each pays two fsyncs) for at
// most this much latency.
const commitLinger = 3 * time.Millisecond

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
	fault   func() error  // tests: a commit fails while it returns an error
	linger  time.Duration // commitLinger; tests set their own
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
	c := &committer{db: db, reqs: make(chan commitReq), stop: make(chan struct{}), stopped: make(chan struct{}), linger: commitLinger,
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
	linger := time.NewTimer(c.linger)
	linger.Stop()
	busy := false
	for {
		var first commitReq
		select {
		case first = <-c.reqs:
		case <-c.stop:
			return
		}
		group := c.gather(first, busy, linger)
		busy = len(group) > 1
		c.commit(group)
	}
}

// gather takes the writes waiting beside first. When the store is busy
// (the last commit had company) it lingers up to c.linger for more,
// so that under load fewer, larger commits share their fsyncs; a lone
// write after a quiet spell is committed at once.
func (c *committer) gather(first commitReq, busy bool, linger *time.Timer) []commitReq {
	group := []commitReq{first}
	var wait <-chan time.Time
	if busy {
		linger.Reset(c.linger)
		defer linger.Stop()
		wait = linger.C
	}
	for len(group) < maxGroup {
		select {
		case r := <-c.reqs:
			group = append(group, r)
			continue
		default:
		}
		if wait == nil {
			break
		}
		select {
		case r := <-c.reqs:
			group = append(group, r)
		case <-wait:
			wait = nil
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
