package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// maxGroup bounds the writes one group commit takes.
const maxGroup = 512

// groupLinger is how long a commit waits, from its first write, for more
// writes to share it, when senders write concurrently (gather). It was
// measured when senders waited on bbolt commits (pages, then the meta
// page, each fsynced): the gate's CPU per message fell with fewer, larger
// commits, while each sender waited up to the linger more. Gate CPU per
// 10k queued messages at a steady offered rate (signed 230-byte bodies,
// 48 connections, two cores), without a linger and with this one:
// 2,000/s: 3.83 s and 2.07–2.12 s (p50 answer 0.8 and 1.9 ms); 4,000/s:
// 2.37–2.42 and 1.51–1.55 (p50 1.2–1.3 and 1.9 ms). One sender writing in
// turn: 650 µs p50 and about 1,450 messages/s in both. The journal's
// groups (one write, one fdatasync) keep it: without it
// BenchmarkFileStoreAddAck was no faster.
const groupLinger = 500 * time.Microsecond

// journalLinger is groupLinger for the journal's groups (a variable:
// experiments set their own).
var journalLinger = groupLinger

// settleLinger is how long a commit of writes that no sender waits on
// (settled attempts, whose delivery slot is already free: SettleWindow)
// waits for a sender's write to share it.
const settleLinger = 2 * time.Millisecond

// settleEnough ends that wait: a group of this many settlings commits at
// once, so a route draining a backlog with no sender writing is not held
// to SettleWindow settlings per linger.
const settleEnough = SettleWindow / 2

// stallAfter is how long a commit runs before the committer counts as
// stalled (a disk that does not answer): only then is a sender that went
// away let go. A healthy commit takes milliseconds; until one stalls, a
// sender whose request context ended (Go's server ends it when a client
// half-closes after a whole request, and such a client still reads its
// answer) is stored and answered like any other.
const stallAfter = time.Second

// errStoreClosed answers a write that arrives after Close.
var errStoreClosed = errors.New("queue: store closed")

// errSenderGone answers a sender that went away while its write waited
// on a stalled commit, before the committer took it: nothing was written.
var errSenderGone = fmt.Errorf("queue: the sender went away before its message was stored: %w", context.Canceled)

// committer is a group commit of the file store, one goroutine each:
// the journal's (senders' new messages, writeJournal) and the store
// file's (every bbolt write transaction, writeTx). Writes that arrive
// while a commit (and its flushes) is running, or within groupLinger of
// a commit's first write, share it, so under load many messages pay one
// commit. The linger is short
// (bbolt's own Batch waits MaxBatchDelay, 10 ms): every sender of a
// queued route waits on a commit, so the linger is added to its answer;
// 3 ms made the queued bench slower than none. Where the disk, not the
// CPU, is what limits (BenchmarkFileStoreAddAck: 32 writers in a closed
// loop, nothing else on the CPUs) any linger costs throughput.
type committer struct {
	db     *bolt.DB
	reqs   chan commitReq // unbuffered: a sender is either taken or told closed
	linger time.Duration  // groupLinger; tests set their own
	// settleLinger is how long a group of writes no sender waits on
	// waits for a sender's (settleLinger; tests set their own).
	settleLinger time.Duration
	last         int // the senders' writes the last commit took (gather's)
	stop         chan struct{}
	stopped      chan struct{}
	once         sync.Once
	fault        func() error // tests: a commit fails while it returns an error
	// durable, when set, is asked after every commit whether what was
	// committed will be found again (the file is still the store's); if
	// not, the group's writes fail: nothing is acknowledged on it.
	durable func() error
	// stallAfter is the const stallAfter, kept per committer so that a
	// test can set its own.
	stallAfter time.Duration
	// writing is when the running commit began to write (Unix ns), 0
	// while none writes: a sender that went away is let go only once it
	// has written for stallAfter (send).
	writing atomic.Int64
	// writeGroup writes a group: writeTx for the store file, the
	// journal's write for the journal's committer.
	writeGroup func([]commitReq) (alone []error, all error)
	// apply is what the journal holds that the store file does not yet:
	// every commit of the store file writes it first (writeTx).
	apply *applyQueue
	// kicked asks for a commit of the store file with no write of its
	// own, to write apply's records (buffered: one asks for all).
	kicked chan struct{}
	// recordFault, for tests, fails every commit that writes journal
	// records while it returns an error (records that do not fit where
	// a removal does).
	recordFault func() error
	// flushAsked makes the next commit write every journal record
	// queued, not only those older than applyAfter.
	flushAsked atomic.Bool
}

type commitReq struct {
	fn     func(*bolt.Tx) error
	rec    *journalRecord // a sender's new message, for the journal
	done   chan error
	sender bool   // a sender waits on it for its answer (a new message)
	id     string // the message fn changes: its journal record is written first
	drops  bool   // fn removes it: its journal record, if queued, need not be written
	flush  bool   // the commit writes every journal record queued (writeTx)
}

// newCommitter starts the store file's committer.
func newCommitter(db *bolt.DB, apply *applyQueue, fault, durable func() error) *committer {
	c := &committer{db: db, reqs: make(chan commitReq), linger: groupLinger, settleLinger: settleLinger, stop: make(chan struct{}), stopped: make(chan struct{}),
		fault: fault, durable: durable, stallAfter: stallAfter, apply: apply, kicked: make(chan struct{}, 1)}
	c.writeGroup = c.writeTx
	go c.run()
	return c
}

// newJournalCommitter starts the journal's committer: groups of senders'
// messages, each written by write.
func newJournalCommitter(fault func() error, write func([]commitReq) ([]error, error)) *committer {
	c := &committer{reqs: make(chan commitReq), linger: journalLinger, stop: make(chan struct{}), stopped: make(chan struct{}),
		fault: fault, stallAfter: stallAfter, writeGroup: write}
	go c.run()
	return c
}

// do runs fn in a group commit and returns once that commit is on disk
// (or failed). fn may run twice: in the group, and alone after another
// write of the group failed; it must be idempotent.
func (c *committer) do(fn func(*bolt.Tx) error) error { return c.send(nil, commitReq{fn: fn}) }

// doOn is do for a write that changes message id (drops: removes it).
func (c *committer) doOn(id string, drops bool, fn func(*bolt.Tx) error) error {
	return c.send(nil, commitReq{fn: fn, id: id, drops: drops})
}

// flush returns once a commit has written every journal record queued
// when it was called into the store file.
func (c *committer) flush() error { return c.send(nil, commitReq{fn: nop, flush: true}) }

// kick asks for a commit of the store file soon, if none is asked yet;
// with all, one that writes every journal record queued.
func (c *committer) kick(all bool) {
	if all {
		c.flushAsked.Store(true)
	}
	select {
	case c.kicked <- struct{}{}:
	default:
	}
}

// doForSender writes a new message, whose sender waits for its answer,
// in a group. A sender whose ctx has ended is let go with errSenderGone,
// nothing written, only while its write waits on a stalled commit (a disk
// that hangs, stallAfter): with a disk that answers it is stored as any
// other, since Go ends a request's context also when the client only
// half-closes its side after sending the whole request.
func (c *committer) doForSender(ctx context.Context, rec *journalRecord) error {
	return c.send(ctx.Done(), commitReq{rec: rec, sender: true})
}

func (c *committer) send(gone <-chan struct{}, req commitReq) error {
	req.done = make(chan error, 1)
	select {
	case c.reqs <- req:
		return <-req.done // the commit is bounded by the disk, not by a caller
	case <-c.stop:
		return errStoreClosed
	case <-gone:
	}
	// The sender went away, or only half-closed: its write is taken as
	// any other unless the running commit has stalled, which holds every
	// write behind it for as long as the disk does.
	for {
		wait := c.stallAfter
		if began := c.writing.Load(); began != 0 {
			if wait -= time.Since(time.Unix(0, began)); wait <= 0 {
				return errSenderGone
			}
		}
		t := time.NewTimer(wait)
		select {
		case c.reqs <- req:
			t.Stop()
			return <-req.done
		case <-c.stop:
			t.Stop()
			return errStoreClosed
		case <-t.C:
		}
	}
}

func (c *committer) run() {
	defer close(c.stopped)
	// The journal's records not written into the store file by the
	// commits that come (those take the records older than applyAfter)
	// are written when later fires: a kick arms it, and so does a commit
	// that leaves records queued.
	var later *time.Timer
	var laterC <-chan time.Time
	armed := false
	if c.apply != nil {
		later = time.NewTimer(applyAfter)
		later.Stop()
		laterC = later.C
	}
	for {
		select {
		case first := <-c.reqs:
			c.commit(c.gather(first))
		case <-c.kicked:
			if !c.flushAsked.Load() {
				if !armed {
					later.Reset(applyAfter)
					armed = true
				}
				continue
			}
			c.commit(c.gatherFrom(nil))
		case <-laterC:
			armed = false
			c.commit(c.gatherFrom(nil))
		case <-c.stop:
			return
		}
		if later != nil && !armed && c.apply.pending() > 0 {
			later.Reset(applyAfter)
			armed = true
		}
	}
}

// gather takes first and the writes already waiting, up to maxGroup.
// When the last commit held more than one sender's message (senders write
// concurrently), it also waits up to c.linger from first for more; else
// it does not, so one sender writing in turn pays no linger (an outside
// attack: +0.9 ms per message and half the throughput of a single sender;
// the settling of its last delivery may share the commit, but is not a
// sender). A group of writes no sender waits on (settled attempts)
// waits up to c.settleLinger for a sender's, to share its commit, unless
// it holds settleEnough: a commit of settlings alone would make the
// senders that come meanwhile wait for it and then for their own, and
// costs its own fsyncs.
func (c *committer) gather(first commitReq) []commitReq {
	return c.gatherFrom([]commitReq{first})
}

// gatherFrom is gather from the writes in group (none for a kicked
// commit, which waits as a group of settlings does).
func (c *committer) gatherFrom(group []commitReq) []commitReq {
	senders := 0
	take := func(r commitReq) {
		group = append(group, r)
		if r.sender {
			senders++
		}
	}
	for _, r := range group {
		if r.sender {
			senders++
		}
	}
	defer func() { c.last = senders }()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	counting := time.Duration(0) // the linger the timer counts
	for len(group) < maxGroup {
		select {
		case r := <-c.reqs:
			take(r)
			continue
		default:
		}
		linger := c.settleLinger
		if senders == 0 && len(group) >= settleEnough {
			return group
		}
		if senders > 0 {
			if c.last < 2 {
				return group
			}
			linger = c.linger
		}
		if linger <= 0 {
			return group
		}
		if linger != counting { // the first wait, or a sender's now: it waits at most c.linger
			if timer == nil {
				timer = time.NewTimer(linger)
			} else {
				timer.Reset(linger)
			}
			counting = linger
		}
		select {
		case r := <-c.reqs:
			take(r)
		case <-timer.C:
			return group
		}
	}
	return group
}

// commit writes group (write), marked as writing while it does, and then
// answers each of its writers: a writer that hears its answer finds no
// commit writing.
func (c *committer) commit(group []commitReq) {
	c.writing.Store(time.Now().UnixNano())
	alone, all := c.write(group)
	c.writing.Store(0)
	for i, r := range group {
		if alone != nil {
			r.done <- alone[i]
		} else {
			r.done <- all
		}
	}
}

// close stops the committer once the commit running has finished; later
// writes get errStoreClosed.
func (c *committer) close() {
	c.once.Do(func() { close(c.stop) })
	<-c.stopped
}
