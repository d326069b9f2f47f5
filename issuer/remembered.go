package issuer

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"
)

// DefaultSecretCacheTTL is how long a secret that passed bcrypt is
// recognised by its keyed hash alone.
const DefaultSecretCacheTTL = time.Hour

// remembered holds, per configured client, a keyed hash (HMAC-SHA256 under
// a key that lives only in this process) of the secret whose bcrypt check
// last succeeded. A returning sender is then verified in microseconds
// instead of paying bcrypt on every token request; a wrong secret, or an
// unknown id, still costs the full bcrypt comparison, so timing tells an
// attacker nothing new. The Server is rebuilt on every reload, so a
// changed or removed secret is never recognised past a reload.
type remembered struct {
	key [32]byte
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]rememberedSecret // client id → the secret that passed
}

type rememberedSecret struct {
	mac   [sha256.Size]byte
	until time.Time
}

// newRemembered returns a cache with a fresh random key; ttl <= 0 turns it
// off (every request pays bcrypt).
func newRemembered(ttl time.Duration) *remembered {
	r := &remembered{ttl: ttl, m: map[string]rememberedSecret{}}
	_, _ = rand.Read(r.key[:]) // never fails (crypto/rand panics instead)
	return r
}

// mac is the keyed hash of (id, secret), length-prefixed so that no pair
// collides with another.
func (r *remembered) mac(id string, secret []byte) (out [sha256.Size]byte) {
	h := hmac.New(sha256.New, r.key[:])
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(id)))])
	h.Write([]byte(id))
	h.Write(secret)
	copy(out[:], h.Sum(nil))
	return out
}

// match reports whether one of secrets is the one that last passed bcrypt
// for id, within the TTL. Every candidate is compared in constant time.
func (r *remembered) match(id string, secrets [][]byte, now time.Time) bool {
	if r.ttl <= 0 {
		return false
	}
	r.mu.Lock()
	e, ok := r.m[id]
	r.mu.Unlock()
	if !ok || !now.Before(e.until) {
		return false
	}
	found := false
	for _, s := range secrets {
		m := r.mac(id, s)
		if hmac.Equal(m[:], e.mac[:]) {
			found = true
		}
	}
	return found
}

// remember records secret as id's, for the TTL.
func (r *remembered) remember(id string, secret []byte, now time.Time) {
	if r.ttl <= 0 {
		return
	}
	m := r.mac(id, secret)
	r.mu.Lock()
	r.m[id] = rememberedSecret{mac: m, until: now.Add(r.ttl)}
	r.mu.Unlock()
}
