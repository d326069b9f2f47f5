package verifier

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokengate/tokengate/verifier/verifiertest"
)

// TestStoreMatchesAModelLRU drives the store and a plain model (a map and
// a list in recency order) with the same random adds, gets, expiries and
// evictions over a small key pool, so that table collisions, back-shifted
// deletions, replaced keys and a full store all happen, and compares every
// answer, the recency order and the shared profiles.
func TestStoreMatchesAModelLRU(t *testing.T) {
	type modelEntry struct {
		key   [32]byte
		until time.Time
		p     *Principal
	}
	scopes := [][]string{{"a"}, {"b"}, {"a", "b"}}
	for seed := range uint64(40) {
		r := rand.New(rand.NewPCG(seed, 1))
		maxN := 1 + r.IntN(60)
		evicted := 0
		s := newStore(maxN, func() { evicted++ })
		var model []modelEntry // most recent first
		find := func(k [32]byte) int {
			return slices.IndexFunc(model, func(e modelEntry) bool { return e.key == k })
		}
		now := time.Unix(1_700_000_000, 0)
		for op := range 3000 {
			var k [32]byte
			k[r.IntN(32)] = byte(r.IntN(150))
			switch r.IntN(10) {
			case 0, 1, 2, 3:
				p := &Principal{Source: "idp", Subject: fmt.Sprint("s", r.IntN(3)), Scopes: scopes[r.IntN(len(scopes))]}
				if r.IntN(2) == 0 {
					p.Expiry = now.Add(time.Duration(r.IntN(100)) * time.Second).Add(time.Duration(r.IntN(1e9)))
				}
				until := now.Add(time.Duration(1+r.IntN(60)) * time.Second)
				if i := find(k); i >= 0 {
					model = slices.Delete(model, i, i+1)
				} else if len(model) >= maxN {
					model = model[:len(model)-1]
				}
				model = slices.Insert(model, 0, modelEntry{k, until, p})
				s.add(&k, p, until)
			case 4:
				now = now.Add(time.Duration(r.IntN(5)) * time.Second)
			case 5:
				n := r.IntN(3)
				s.dropExpired(now, n)
				for range n {
					if len(model) == 0 || now.Before(model[len(model)-1].until) {
						break
					}
					model = model[:len(model)-1]
				}
			default:
				got, ok := s.get(&k, now)
				i := find(k)
				want := i >= 0 && now.Before(model[i].until)
				if ok != want {
					t.Fatalf("seed %d op %d: get = %v, model says %v", seed, op, ok, want)
				}
				if i >= 0 {
					e := model[i]
					model = slices.Delete(model, i, i+1)
					if want {
						model = slices.Insert(model, 0, e)
						if got.Subject != e.p.Subject || !slices.Equal(got.Scopes, e.p.Scopes) || !got.Expiry.Equal(e.p.Expiry) || got.TokenID() != hex.EncodeToString(k[:4]) {
							t.Fatalf("seed %d op %d: got %+v, stored %+v", seed, op, got, e.p)
						}
					}
				}
			}
			if s.n != len(model) {
				t.Fatalf("seed %d op %d: store holds %d, model %d", seed, op, s.n, len(model))
			}
		}
		var order [][32]byte
		refs := 0
		for ref := s.head; ref != 0; ref = s.at(ref - 1).next {
			order = append(order, s.at(ref-1).key)
		}
		for _, pr := range s.profiles {
			refs += pr.refs
		}
		var want [][32]byte
		for _, e := range model {
			want = append(want, e.key)
		}
		if !slices.Equal(order, want) || refs != len(model) || len(s.profiles) > 9 {
			t.Fatalf("seed %d: recency order or profiles differ: %d profiles holding %d references for %d entries", seed, len(s.profiles), refs, len(model))
		}
		for _, e := range model {
			if now.Before(e.until) {
				if _, ok := s.get(&e.key, now); !ok {
					t.Fatalf("seed %d: entry lost", seed)
				}
			}
		}
		s.dropExpired(now.Add(time.Hour), len(model)+1)
		if s.n != 0 || len(s.profiles) != 0 {
			t.Fatalf("seed %d: %d entries, %d profiles left after every entry expired", seed, s.n, len(s.profiles))
		}
	}
}

// TestCachedTokensTakeLittleMemory verifies real ES256 tokens (one sender,
// a new token each time, as a sender that asks for a token per webhook)
// through the Set and the cache, and measures the live heap each cached
// token adds. It was about 340 bytes when every entry held its own
// Principal in a general-purpose LRU.
func TestCachedTokensTakeLittleMemory(t *testing.T) {
	const n = 10_000
	k := verifiertest.NewKey(jose.ES256)
	j, err := NewJWT(JWTOptions{Name: "idp", Issuer: "https://idp.example", KeySet: mustStatic(t, k.Public()),
		Audiences: []string{"aud"}, Algorithms: []string{"ES256"}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCache(NewSet([]Issuer{{Name: "idp", Iss: "https://idp.example", Verifier: j}}, nil), CacheOptions{MaxEntries: 2 * n, MaxTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).Unix()
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = verifiertest.Sign(k, map[string]any{"iss": "https://idp.example", "aud": "aud", "sub": "sender", "client_id": "sender",
			"scope": "webhooks:write", "exp": exp - int64(i%600), "iat": exp - 3600, "jti": fmt.Sprint(i)}, nil)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, tok := range tokens {
		if _, err := c.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if c.Len() != n {
		t.Fatalf("cache holds %d, want %d", c.Len(), n)
	}
	perToken := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	t.Logf("%d B of live heap per cached token", perToken)
	if perToken > 150 {
		t.Errorf("%d B of live heap per cached token; want at most 150", perToken)
	}
	p, err := c.Verify(context.Background(), tokens[7])
	if err != nil || p.Subject != "sender" || p.Expiry.Unix() != exp-7 || !p.HasScope("webhooks:write") || p.TokenID() != hex.EncodeToString(func() []byte { k := cacheKey(tokens[7]); return k[:4] }()) {
		t.Fatalf("cached principal %+v, %v", p, err)
	}
	runtime.KeepAlive(tokens)
}
