package main

import (
	"hash/maphash"
	"slices"
	"sync"
)

// ledger is the queued bench's accounting: the delivery ids the load
// generator saw acknowledged (202 with a delivery_id) and every delivery
// the receiver took, so that losses and duplicates are counted from ids,
// not from totals that could hide one behind the other. It is sharded by
// id: the load generator's connections and the receiver's handlers record
// into it at every request, and one lock for all of them would cost the
// queued rounds CPU the bare rounds do not pay.
type ledger struct {
	seed   maphash.Seed
	shards [64]ledgerShard
}

type ledgerShard struct {
	mu        sync.Mutex
	acked     map[string]struct{}
	delivered map[string]int // id → deliveries taken (answered 2xx)
	takes     int            // deliveries taken, duplicates included
	missing   int            // acknowledged, not delivered yet (kept as ids come: backlog reads it)
}

func newLedger() *ledger {
	l := &ledger{seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].acked = map[string]struct{}{}
		l.shards[i].delivered = map[string]int{}
	}
	return l
}

func (l *ledger) shard(id string) *ledgerShard {
	return &l.shards[maphash.String(l.seed, id)%uint64(len(l.shards))]
}

// ack records an acknowledged message.
func (l *ledger) ack(id string) {
	s := l.shard(id)
	s.mu.Lock()
	if _, again := s.acked[id]; !again {
		s.acked[id] = struct{}{}
		if s.delivered[id] == 0 {
			s.missing++
		}
	}
	s.mu.Unlock()
}

// deliver records one delivery the receiver took.
func (l *ledger) deliver(id string) {
	s := l.shard(id)
	s.mu.Lock()
	s.delivered[id]++
	s.takes++
	if _, ok := s.acked[id]; ok && s.delivered[id] == 1 {
		s.missing--
	}
	s.mu.Unlock()
}

// tally is a ledger's sums at one moment.
type tally struct {
	acked      int      // distinct ids acknowledged
	takes      int      // deliveries taken, duplicates included
	distinct   int      // distinct ids delivered
	duplicates int      // takes beyond the first of each id
	missing    int      // acknowledged, never delivered (the backlog; after a drain: losses)
	unacked    int      // delivered, never acknowledged (the sender saw no 202: allowed)
	lost       []string // up to 5 of the missing ids, sorted
}

// tally sums the ledger up (an id's ack and deliveries are in one shard).
func (l *ledger) tally() tally {
	var t tally
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		t.acked += len(s.acked)
		t.takes += s.takes
		t.distinct += len(s.delivered)
		for id, n := range s.delivered {
			t.duplicates += n - 1
			if _, ok := s.acked[id]; !ok {
				t.unacked++
			}
		}
		for id := range s.acked {
			if s.delivered[id] == 0 {
				t.missing++
				t.lost = append(t.lost, id)
			}
		}
		s.mu.Unlock()
	}
	slices.Sort(t.lost)
	t.lost = t.lost[:min(len(t.lost), 5)]
	return t
}

// backlog is the count of acknowledged messages not delivered yet. It
// reads the shards' counts: waitDrain asks every 20 ms, and a scan of
// every id would take a core (and the shard locks the receiver needs)
// while the gate drains.
func (l *ledger) backlog() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += s.missing
		s.mu.Unlock()
	}
	return n
}
