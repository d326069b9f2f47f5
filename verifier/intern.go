package verifier

import (
	"encoding/binary"
	"sync"
)

// maxInterned bounds an interner: past it, values are simply not shared.
const maxInterned = 4096

// interner shares the strings and lists that repeat across the tokens of
// one issuer (issuer, audience, client ids, scope sets), so that 100,000
// cached principals do not hold 100,000 copies of them.
type interner struct {
	mu    sync.Mutex
	strs  map[string]string
	lists map[string][]string
}

func newInterner() *interner {
	return &interner{strs: map[string]string{}, lists: map[string][]string{}}
}

func (in *interner) str(s string) string {
	if s == "" {
		return ""
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if v, ok := in.strs[s]; ok {
		return v
	}
	if len(in.strs) < maxInterned {
		in.strs[s] = s
	}
	return s
}

// list returns a shared copy of l. Callers must not modify it (principals
// are read-only).
func (in *interner) list(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	key := listKey(l)
	in.mu.Lock()
	defer in.mu.Unlock()
	if v, ok := in.lists[key]; ok {
		return v
	}
	if len(in.lists) < maxInterned {
		in.lists[key] = l
	}
	return l
}

// listKey is an unambiguous key for a list: each element prefixed with its
// length, so that ["a\x00b"] and ["a","b"] (or ["ab"]) never share a key
// and one token never comes out holding another token's scopes.
func listKey(l []string) string {
	n := 0
	for _, s := range l {
		n += len(s) + 4
	}
	b := make([]byte, 0, n)
	for _, s := range l {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return string(b)
}

// principal builds a principal whose repeated values are shared.
func (in *interner) principal(c *claims, source string) *Principal {
	return &Principal{
		Source: source, Issuer: in.str(c.issuer), Subject: in.str(c.subject), ClientID: in.str(c.clientID),
		Audience: in.list(c.audience), Scopes: in.list(c.scopes), Expiry: c.expiry, Claims: c.all,
	}
}
