package verifier

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
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
// token adds: with the registered claims only, and with a claim header
// (KeepClaims, ClaimNames [tenant]) on tokens that carry other claims too.
// It was about 400 bytes when every entry held its own Principal in a
// general-purpose LRU, and about 1,400 with every claim kept.
func TestCachedTokensTakeLittleMemory(t *testing.T) {
	for _, c := range []struct {
		name  string
		keep  bool
		names []string
	}{{"registered claims", false, nil}, {"claim header", true, []string{"tenant"}}} {
		t.Run(c.name, func(t *testing.T) { testCachedTokenMemory(t, c.keep, c.names) })
	}
}

func testCachedTokenMemory(t *testing.T, keep bool, names []string) {
	const n = 5_000
	k := verifiertest.NewKey(jose.ES256)
	j, err := NewJWT(JWTOptions{Name: "idp", Issuer: "https://idp.example", KeySet: mustStatic(t, k.Public()),
		Audiences: []string{"aud"}, Algorithms: []string{"ES256"}, KeepClaims: keep, ClaimNames: names})
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
			"scope": "webhooks:write", "exp": exp - int64(i%600), "iat": exp - 3600, "jti": fmt.Sprint(i),
			"tenant": "acme", "email": "hooks@sender.example", "roles": []string{"sender", "webhooks"}}, nil)
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
	if want := map[string]any{"tenant": "acme"}; keep && !reflect.DeepEqual(p.Claims, want) {
		t.Fatalf("claims %v, want %v", p.Claims, want)
	}
	runtime.KeepAlive(tokens)
}

// TestOnlyNamedClaimsAreKept: with ClaimNames, a principal holds those
// claims only, decoded as before (numbers exact, lists), from a JWT and
// from an introspection answer; nil keeps every claim; an empty list none.
func TestOnlyNamedClaimsAreKept(t *testing.T) {
	k := verifiertest.NewKey(jose.ES256)
	claims := map[string]any{"iss": "https://partner.example", "aud": "https://hooks.example.com", "sub": "s", "exp": time.Now().Add(time.Hour).Unix(),
		"tenant": "acme", "level": json.Number("12345678901234567890"), "groups": []string{"a", "b"}, "email": "x@y"}
	tok := verifiertest.Sign(k, claims, nil)
	in := verifiertest.NewIntrospector()
	defer in.Close()
	active := verifiertest.ActiveClaims("x", time.Hour)
	for _, name := range []string{"tenant", "level", "groups", "email"} {
		active[name] = claims[name]
	}
	in.Add("opaque", active)
	for _, c := range []struct {
		names []string
		want  []string
	}{
		{[]string{"tenant", "level", "groups", "absent"}, []string{"groups", "level", "tenant"}},
		{[]string{}, nil},
	} {
		j, err := NewJWT(JWTOptions{Name: "idp", Issuer: "https://partner.example", KeySet: mustStatic(t, k.Public()),
			Audiences: []string{"https://hooks.example.com"}, Algorithms: []string{"ES256"}, KeepClaims: true, ClaimNames: c.names})
		if err != nil {
			t.Fatal(err)
		}
		fromJWT, err := j.Verify(context.Background(), tok)
		if err != nil {
			t.Fatal(err)
		}
		fromIntro, err := newIntrospection(t, in, func(o *IntrospectionOptions) { o.ClaimNames = c.names }).Verify(context.Background(), "opaque")
		if err != nil {
			t.Fatal(err)
		}
		for what, p := range map[string]*Principal{"jwt": fromJWT, "introspection": fromIntro} {
			got := slices.Sorted(maps.Keys(p.Claims))
			if !slices.Equal(got, c.want) {
				t.Errorf("%s, names %q: kept %q, want %q", what, c.names, got, c.want)
			}
			if len(c.want) > 0 && (p.Claims["level"] != json.Number("12345678901234567890") || !reflect.DeepEqual(p.Claims["groups"], []any{"a", "b"}) || p.Claims["tenant"] != "acme") {
				t.Errorf("%s: claims decoded differently: %#v", what, p.Claims)
			}
		}
	}
	all, err := newIntrospection(t, in, nil).Verify(context.Background(), "opaque")
	if err != nil || all.Claims["email"] != "x@y" || all.Claims["active"] != nil {
		t.Fatalf("without ClaimNames: %v, %v; want every member but active", all.Claims, err)
	}
}
