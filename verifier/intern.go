package verifier

import (
	"encoding/binary"
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

// principal builds a principal whose repeated values are shared.
func (in *interner) principal(c *claims, source string) *Principal {
	return &Principal{
		Source: source, Issuer: in.str(c.issuer), Subject: in.str(c.subject), ClientID: in.str(c.clientID),
		Audience: in.list(c.audience), Scopes: in.list(c.scopes), Expiry: c.expiry, Claims: c.all,
	}
}
