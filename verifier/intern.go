package verifier

import (
	"encoding/binary"
	"encoding/json"
	"sync"
	"sync/atomic"
	"unique"
)

// maxInterned bounds the lists an interner shares: past it, lists are
// simply not shared.
const maxInterned = 4096

// interner shares the strings and lists that repeat across the tokens of
// one issuer (issuer, audience, client ids, scope sets), so that 100,000
// cached principals do not hold 100,000 copies of them. Strings go through
// Go's unique package: one canonical copy of each string while it is in
// use, dropped by the garbage collector after. A list is found by the
// unique handle of its canonical key (listKey).
type interner struct {
	lists sync.Map // unique.Handle[string] of listKey → []string
	n     atomic.Int32
	maps  sync.Map // unique.Handle[string] of a claim map's JSON → the map
	nMaps atomic.Int32
}

func newInterner() *interner { return &interner{} }

func (in *interner) str(s string) string {
	if s == "" {
		return ""
	}
	return unique.Make(s).Value()
}

// list returns a shared copy of l. Callers must not modify it (principals
// are read-only).
func (in *interner) list(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	var buf [64]byte
	key := unique.Make(string(listKey(buf[:0], l)))
	if v, ok := in.lists.Load(key); ok {
		return v.([]string)
	}
	if in.n.Load() >= maxInterned {
		return l
	}
	v, loaded := in.lists.LoadOrStore(key, l)
	if !loaded {
		in.n.Add(1)
	}
	return v.([]string)
}

// listKey appends to b an unambiguous key for a list: each element
// prefixed with its length, so that ["a\x00b"] and ["a","b"] (or ["ab"])
// never share a key and one token never comes out holding another token's
// scopes.
func listKey(b []byte, l []string) []byte {
	for _, s := range l {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// claims returns a shared copy of a map of kept claims, found by its JSON
// text (json.Marshal sorts the names; the values were decoded from valid
// UTF-8 JSON with exact numbers, so equal text means equal claims).
// Callers must not modify it.
func (in *interner) claims(m map[string]any) map[string]any {
	if len(m) == 0 {
		return m
	}
	b, err := json.Marshal(m)
	if err != nil {
		return m
	}
	key := unique.Make(string(b))
	if v, ok := in.maps.Load(key); ok {
		return v.(map[string]any)
	}
	if in.nMaps.Load() >= maxInterned {
		return m
	}
	v, loaded := in.maps.LoadOrStore(key, m)
	if !loaded {
		in.nMaps.Add(1)
	}
	return v.(map[string]any)
}

// principal builds a principal whose repeated values are shared, its kept
// claims too when shareClaims (named claims only: a map of every claim is
// the token's own).
func (in *interner) principal(c *claims, source string, shareClaims bool) *Principal {
	all := c.all
	if shareClaims {
		all = in.claims(all)
	}
	return &Principal{
		Source: source, Issuer: in.str(c.issuer), Subject: in.str(c.subject), ClientID: in.str(c.clientID),
		Audience: in.list(c.audience), Scopes: in.list(c.scopes), Expiry: c.expiry, Claims: all,
	}
}
