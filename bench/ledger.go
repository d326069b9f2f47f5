package main

import (
	"slices"
	"sync"
)

// ledger is the queued bench's accounting: the delivery ids the load
// generator saw acknowledged (202 with a delivery_id) and every delivery
// the receiver took, so that losses and duplicates are counted from ids,
// not from totals that could hide one behind the other.
type ledger struct {
	mu        sync.Mutex
	acked     map[string]struct{}
	delivered map[string]int // id → deliveries taken (answered 2xx)
	takes     int            // deliveries taken, duplicates included
}

func newLedger() *ledger {
	return &ledger{acked: map[string]struct{}{}, delivered: map[string]int{}}
}

// ack records an acknowledged message.
func (l *ledger) ack(id string) {
	l.mu.Lock()
	l.acked[id] = struct{}{}
	l.mu.Unlock()
}

// deliver records one delivery the receiver took.
func (l *ledger) deliver(id string) {
	l.mu.Lock()
	l.delivered[id]++
	l.takes++
	l.mu.Unlock()
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

// tally sums the ledger up.
func (l *ledger) tally() tally {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := tally{acked: len(l.acked), takes: l.takes, distinct: len(l.delivered)}
	for id, n := range l.delivered {
		t.duplicates += n - 1
		if _, ok := l.acked[id]; !ok {
			t.unacked++
		}
	}
	for id := range l.acked {
		if l.delivered[id] == 0 {
			t.missing++
			t.lost = append(t.lost, id)
		}
	}
	slices.Sort(t.lost)
	t.lost = t.lost[:min(len(t.lost), 5)]
	return t
}

// backlog is the count of acknowledged messages not delivered yet.
func (l *ledger) backlog() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for id := range l.acked {
		if l.delivered[id] == 0 {
			n++
		}
	}
	return n
}
