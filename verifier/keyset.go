package verifier

import (
	"context"
	"sync/atomic"

	jose "github.com/go-jose/go-jose/v4"
)

// key is one verification key and whether it is still published. A
// principal verified with it keeps the flag, so a cached verification dies
// with the key.
type key struct {
	jwk  jose.JSONWebKey
	gone *atomic.Bool // nil for keys that never leave (the embedded issuer's)
}

// keySource is what the JWT verifier needs from a key set: the keys that
// may have signed a token with kid, fetched under the set's policy.
type keySource interface {
	keysFor(ctx context.Context, kid string) ([]key, error)
}

// StaticKeySet holds keys in memory: the embedded token endpoint's own
// public keys, verified in-process.
type StaticKeySet struct {
	byKID map[string][]key
	all   []key
}

// NewStaticKeySet keeps the public parts of keys.
func NewStaticKeySet(keys []jose.JSONWebKey) *StaticKeySet {
	s := &StaticKeySet{byKID: map[string][]key{}}
	for _, k := range keys {
		kk := key{jwk: k.Public()}
		s.all = append(s.all, kk)
		s.byKID[k.KeyID] = append(s.byKID[k.KeyID], kk)
	}
	return s
}

func (s *StaticKeySet) keysFor(_ context.Context, kid string) ([]key, error) {
	keys := s.all
	if kid != "" {
		keys = s.byKID[kid]
	}
	if len(keys) == 0 {
		return nil, errUnknownKey
	}
	return keys, nil
}
