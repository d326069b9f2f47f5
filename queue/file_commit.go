package queue

import (
	"errors"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// maxGroup bounds the writes one group commit takes.
const maxGroup = 512

// groupLinger is how long a commit waits, from its first write, for more
// writes to share it. Each bbolt commit writes its pages and fsyncs twice
// (data, then meta), so the gate's CPU per message falls with fewer,
// larger commits, while each write waits up to the linger more. Gate CPU
// per 10k queued messages at a fixed offered rate (signed 230-byte
// bodies, 48 connections, two cores): 2,000/s: 3.83 s without a linger,
// 2.83 with 250 µs, 2.33 with 500 µs, 2.14 with 1 ms; 4,000/s: 2.53
// without, 2.06 with 500 µs; 7,000/s (saturated): 1.61, 1.63, 1.43, 1.39.
const groupLinger = 500 * time.Microsecond

// errStoreClosed answers a write that arrives after Close.
var errStoreClosed = errors.New("queue: store closed")

// committer is the file store's group commit: one goroutine runs every
// write transaction. Writes that arrive while a commit (and its fsyncs)
// is running, or within groupLinger of a commit's first write, share it,
// so under load many messages pay one commit. The linger is short
// (bbolt's own Batch waits MaxBatchDelay, 10 ms): every sender of a
// queued route waits on a commit, so the linger is added to its answer;
// 3 ms made the queued bench slower than none. Where the disk, not the
// CPU, is what limits (BenchmarkFileStoreAddAck: 32 writers in a closed
// loop, nothing else on the CPUs) any linger costs throughput.
type committer struct {
	db      *bolt.DB
	reqs    chan commitReq // unbuffered: a sender is either taken or told closed
	linger  time.Duration  // groupLinger; tests set their own
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
	c := &committer{db: db, reqs: make(chan commitReq), linger: groupLinger, stop: make(chan struct{}), stopped: make(chan struct{}),
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

// gather takes first and the writes that arrive within c.linger of it,
// up to maxGroup (the writes already waiting included): those share one
// commit and its two fsyncs.
func (c *committer) gather(first commitReq) []commitReq {
	group := []commitReq{first}
	var wait <-chan time.Time
	if c.linger > 0 {
		t := time.NewTimer(c.linger)
		defer t.Stop()
		wait = t.C
	}
	for len(group) < maxGroup {
		select {
		case r := <-c.reqs:
			group = append(group, r)
			continue
		default:
		}
		if wait == nil {
			return group
		}
		select {
		case r := <-c.reqs:
			group = append(group, r)
		case <-wait:
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
