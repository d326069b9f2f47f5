package signature

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// DefaultMemoryEntries bounds the messages the in-memory store holds per
// route.
const DefaultMemoryEntries = 100_000

// MemoryStore is the replay store of a single instance: a map of message
// keys, each with its state, owner and expiry, and per route a heap of
// expiries so that an expired message is dropped first. A message is never
// dropped before its expiry: when a route holds its bound of live
// messages, a new one is refused with ErrStoreFull. It starts no
// goroutine.
type MemoryStore struct {
	mu      sync.Mutex
	max     int
	now     func() time.Time
	entries map[string]*memEntry
	scopes  map[string]*memScope
}

var _ Store = (*MemoryStore)(nil)

type memEntry struct {
	owner string
	taken bool
	until time.Time
}

// memScope is one route's share of the store: its live messages and the
// expiries to drop them at (an expiry may be stale: the entry was taken,
// extended or released since).
type memScope struct {
	n   int
	exp expiries
}

type expiry struct {
	key   string
	until time.Time
}

type expiries []expiry

func (e expiries) Len() int           { return len(e) }
func (e expiries) Less(i, j int) bool { return e[i].until.Before(e[j].until) }
func (e expiries) Swap(i, j int)      { e[i], e[j] = e[j], e[i] }
func (e *expiries) Push(x any)        { *e = append(*e, x.(expiry)) }
func (e *expiries) Pop() any {
	old := *e
	x := old[len(old)-1]
	*e = old[:len(old)-1]
	return x
}

// MemoryOptions configures a MemoryStore.
type MemoryOptions struct {
	// Entries bounds the messages held per route (DefaultMemoryEntries if
	// ≤ 0).
	Entries int
	// Now is the clock that leases and windows end by; default time.Now.
	Now func() time.Time
}

// NewMemoryStore returns an empty store.
func NewMemoryStore(o MemoryOptions) *MemoryStore {
	if o.Entries <= 0 {
		o.Entries = DefaultMemoryEntries
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &MemoryStore{max: o.Entries, now: o.Now, entries: map[string]*memEntry{}, scopes: map[string]*memScope{}}
}

// Claim implements Store.
func (m *MemoryStore) Claim(_ context.Context, t Ticket, lease time.Duration) (State, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.scope(t.Scope, now)
	if e, ok := m.entries[t.Key]; ok && now.Before(e.until) {
		switch {
		case e.owner == t.Owner && !e.taken:
			return Fresh, nil
		case e.taken:
			return Taken, nil
		}
		return InFlight, nil
	}
	if s.n >= m.max {
		return 0, ErrStoreFull
	}
	m.put(s, t, false, now.Add(lease))
	return Fresh, nil
}

// Take implements Store. A delivered message is recorded whoever holds
// it, past the bound if need be: it is never left unrecorded.
func (m *MemoryStore) Take(_ context.Context, t Ticket, ttl time.Duration) error {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.scope(t.Scope, now)
	until := now.Add(ttl)
	if e, ok := m.entries[t.Key]; ok && e.until.After(until) {
		until = e.until
	}
	m.put(s, t, true, until)
	return nil
}

// Release implements Store.
func (m *MemoryStore) Release(_ context.Context, t Ticket) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.entries[t.Key]; ok && e.owner == t.Owner && !e.taken {
		delete(m.entries, t.Key)
		if s := m.scopes[t.Scope]; s != nil {
			s.n--
		}
	}
	return nil
}

// put records a new entry (any expired one under the key is replaced).
func (m *MemoryStore) put(s *memScope, t Ticket, taken bool, until time.Time) {
	if _, ok := m.entries[t.Key]; !ok {
		s.n++
	}
	m.entries[t.Key] = &memEntry{owner: t.Owner, taken: taken, until: until}
	heap.Push(&s.exp, expiry{t.Key, until})
}

// scope returns the route's share, with its expired entries dropped.
func (m *MemoryStore) scope(name string, now time.Time) *memScope {
	s := m.scopes[name]
	if s == nil {
		s = &memScope{}
		m.scopes[name] = s
	}
	for len(s.exp) > 0 && !now.Before(s.exp[0].until) {
		x := heap.Pop(&s.exp).(expiry)
		if e, ok := m.entries[x.key]; ok && !now.Before(e.until) {
			delete(m.entries, x.key)
			s.n--
		}
	}
	return s
}

// Len is the number of messages held (expired ones not yet dropped
// included).
func (m *MemoryStore) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}
