package signature

import (
	"context"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// DefaultMemoryEntries bounds the in-memory replay store.
const DefaultMemoryEntries = 100_000

// MemoryStore is the replay store of a single instance: an LRU of message
// ids, each with its expiry (checked on every lookup; an expired id takes
// no room from a live one, as the LRU drops the least recently claimed
// first). It starts no goroutine. Only verified messages are recorded, so filling it
// takes that many authentic messages within the window; when it is full
// the oldest id is dropped first (a replay of that message would then
// pass the store, though a timestamped scheme still refuses it once the
// timestamp leaves the tolerance).
type MemoryStore struct {
	mu  sync.Mutex
	lru *lru.Cache[string, time.Time]
	now func() time.Time
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore keeps up to entries ids (DefaultMemoryEntries if ≤ 0).
func NewMemoryStore(entries int) *MemoryStore {
	if entries <= 0 {
		entries = DefaultMemoryEntries
	}
	c, _ := lru.New[string, time.Time](entries) // only fails for size ≤ 0
	return &MemoryStore{lru: c, now: time.Now}
}

// Claim records keys unless one is recorded and not yet expired.
func (m *MemoryStore) Claim(_ context.Context, keys []string, ttl time.Duration) (bool, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		if until, ok := m.lru.Peek(k); ok && now.Before(until) {
			return false, nil
		}
	}
	for _, k := range keys {
		m.lru.Add(k, now.Add(ttl))
	}
	return true, nil
}

// Forget removes keys.
func (m *MemoryStore) Forget(_ context.Context, keys []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		m.lru.Remove(k)
	}
	return nil
}

// Len is the number of ids held (expired ones not yet dropped included).
func (m *MemoryStore) Len() int { return m.lru.Len() }
