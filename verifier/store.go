package verifier

import (
	"encoding/hex"
	"hash/maphash"
	"reflect"
	"sync"
	"time"
	"unsafe"
)

// store is the positive side of Cache: verified tokens in least recently
// used order, at about 70 bytes each (a 64-byte slot and its table entry).
// A token's slot holds only what is its own (the key, the times) and names
// a profile: the rest of its Principal, shared by every cached token with
// the same issuer, subject, client, audience, scopes, kept claims and
// signing key. Slots live in fixed-size chunks linked by index (no
// per-entry allocation, and no pointer: the garbage collector never scans
// them; a slot names its profile by number) and are found through an
// open-addressing table of slot numbers under a keyed hash, so that chosen
// tokens cannot pile up in one run of the table.
type store struct {
	mu       sync.Mutex
	seed     maphash.Seed
	chunks   [][]slot
	table    []uint32 // slot number + 1; 0 is empty
	free     uint32   // first free slot number + 1 (linked by next)
	used     uint32   // slots handed out from the chunks so far
	head     uint32   // most recently used slot + 1
	tail     uint32   // least recently used slot + 1
	n, max   int
	profiles map[profileKey]*profile
	profs    []*profile // by number - 1
	freeProf []uint32   // numbers of profs free for reuse
	onEvict  func()
}

// slot is one cached verification.
type slot struct {
	key        [32]byte
	until      int64  // unix nanoseconds: reused before this
	expSec     int64  // the token's expiry (Principal.Expiry), 0 and 0: none
	prof       uint32 // profile number + 1
	prev, next uint32 // slot number + 1 (0: none), LRU order or free list
	expNsec    uint32
}

// profile is the shared part of cached principals: a Principal without
// Expiry and token id, referenced by refs slots.
type profile struct {
	p    Principal
	key  profileKey
	refs int
	num  uint32 // its number + 1 (slot.prof)
}

// profileKey identifies a profile. Lists and the claim map are compared by
// identity: the verifiers share (intern) equal ones, and equal identity
// implies equal content because principals are read-only.
type profileKey struct {
	source, issuer, subject, clientID string
	aud, scopes                       *string
	nAud, nScopes                     int
	claims                            unsafe.Pointer
	keyGone                           unsafe.Pointer
}

const (
	chunkBits = 12
	chunkSize = 1 << chunkBits
)

func newStore(max int, onEvict func()) *store {
	return &store{seed: maphash.MakeSeed(), max: max, profiles: map[profileKey]*profile{}, onEvict: onEvict}
}

func (s *store) at(i uint32) *slot { return &s.chunks[i>>chunkBits][i&(chunkSize-1)] }

func (s *store) hash(k *[32]byte) uint64 { return maphash.Bytes(s.seed, k[:]) }

// find returns the table position of key and its slot number + 1 (0: not
// there; the position is then where it would go).
func (s *store) find(key *[32]byte) (pos int, ref uint32) {
	if len(s.table) == 0 {
		return 0, 0
	}
	mask := len(s.table) - 1
	for pos = int(s.hash(key)) & mask; ; pos = (pos + 1) & mask {
		ref = s.table[pos]
		if ref == 0 || s.at(ref-1).key == *key {
			return pos, ref
		}
	}
}

// get returns the principal cached for key, if it is still good at now. A
// found entry becomes the most recently used one; an expired one, or one
// whose signing key was withdrawn, is removed.
func (s *store) get(key *[32]byte, now time.Time) (*Principal, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pos, ref := s.find(key)
	if ref == 0 {
		return nil, false
	}
	e := s.at(ref - 1)
	prof := s.profs[e.prof-1]
	if now.UnixNano() >= e.until || prof.p.KeyWithdrawn() {
		s.remove(pos, ref)
		return nil, false
	}
	s.unlink(ref)
	s.pushFront(ref)
	return e.principal(prof), true
}

// hit is a cached principal and the text of its token id in one
// allocation.
type hit struct {
	p  Principal
	id [8]byte
}

// principal returns a new Principal for the slot's token: its profile,
// its expiry and its token id.
func (e *slot) principal(prof *profile) *Principal {
	h := &hit{p: prof.p}
	if e.expSec != 0 || e.expNsec != 0 {
		h.p.Expiry = time.Unix(e.expSec, int64(e.expNsec)).UTC()
	}
	hex.Encode(h.id[:], e.key[:4])
	h.p.tokenID = unsafe.String(&h.id[0], len(h.id)) // h.id is never written again
	return &h.p
}

// add caches p for key until until (replacing an entry for key), evicting
// the least recently used entry at capacity.
func (s *store) add(key *[32]byte, p *Principal, until time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pos, ref := s.find(key); ref != 0 {
		s.remove(pos, ref)
	}
	if s.n >= s.max {
		s.evictOldest()
	}
	if (s.n+1)*4 > len(s.table)*3 {
		s.grow()
	}
	ref := s.alloc()
	e := s.at(ref - 1)
	*e = slot{key: *key, until: until.UnixNano(), prof: s.profileOf(p)}
	if !p.Expiry.IsZero() {
		e.expSec, e.expNsec = p.Expiry.Unix(), uint32(p.Expiry.Nanosecond())
	}
	pos, _ := s.find(key)
	s.table[pos] = ref
	s.pushFront(ref)
	s.n++
}

// dropExpired removes up to n expired entries from the least recently
// used end.
func (s *store) dropExpired(now time.Time, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		if s.tail == 0 || now.UnixNano() < s.at(s.tail-1).until {
			return
		}
		pos, ref := s.find(&s.at(s.tail - 1).key)
		s.remove(pos, ref)
	}
}

func (s *store) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func (s *store) evictOldest() {
	if s.tail == 0 {
		return
	}
	pos, ref := s.find(&s.at(s.tail - 1).key)
	s.remove(pos, ref)
	if s.onEvict != nil {
		s.onEvict()
	}
}

// alloc returns a free slot number + 1.
func (s *store) alloc() uint32 {
	if ref := s.free; ref != 0 {
		s.free = s.at(ref - 1).next
		return ref
	}
	if int(s.used)>>chunkBits == len(s.chunks) {
		s.chunks = append(s.chunks, make([]slot, chunkSize))
	}
	s.used++
	return s.used
}

// remove takes the entry ref, found at table position pos, out of the
// table (shifting back the entries after it, so no search ever stops
// early), the LRU list and its profile.
func (s *store) remove(pos int, ref uint32) {
	mask := len(s.table) - 1
	for i := (pos + 1) & mask; ; i = (i + 1) & mask {
		r := s.table[i]
		if r == 0 {
			break
		}
		home := int(s.hash(&s.at(r-1).key)) & mask
		// r may move into the hole at pos if its home is not in (pos, i].
		if (i > pos && (home <= pos || home > i)) || (i < pos && home <= pos && home > i) {
			s.table[pos] = r
			pos = i
		}
	}
	s.table[pos] = 0
	s.unlink(ref)
	e := s.at(ref - 1)
	s.release(e.prof)
	*e = slot{next: s.free}
	s.free = ref
	s.n--
}

// grow doubles the table (16 positions at first) and places every entry
// again.
func (s *store) grow() {
	old := s.table
	s.table = make([]uint32, max(16, 2*len(old)))
	mask := len(s.table) - 1
	for _, ref := range old {
		if ref == 0 {
			continue
		}
		pos := int(s.hash(&s.at(ref-1).key)) & mask
		for s.table[pos] != 0 {
			pos = (pos + 1) & mask
		}
		s.table[pos] = ref
	}
}

func (s *store) unlink(ref uint32) {
	e := s.at(ref - 1)
	if e.prev != 0 {
		s.at(e.prev - 1).next = e.next
	} else if s.head == ref {
		s.head = e.next
	}
	if e.next != 0 {
		s.at(e.next - 1).prev = e.prev
	} else if s.tail == ref {
		s.tail = e.prev
	}
	e.prev, e.next = 0, 0
}

func (s *store) pushFront(ref uint32) {
	e := s.at(ref - 1)
	e.prev, e.next = 0, s.head
	if s.head != 0 {
		s.at(s.head - 1).prev = ref
	}
	s.head = ref
	if s.tail == 0 {
		s.tail = ref
	}
}

// profileOf returns the number + 1 of the shared profile of p, making one
// if needed, with one more reference.
func (s *store) profileOf(p *Principal) uint32 {
	k := profileKey{
		source: p.Source, issuer: p.Issuer, subject: p.Subject, clientID: p.ClientID,
		aud: unsafe.SliceData(p.Audience), nAud: len(p.Audience),
		scopes: unsafe.SliceData(p.Scopes), nScopes: len(p.Scopes),
		keyGone: unsafe.Pointer(p.keyGone),
	}
	if p.Claims != nil {
		k.claims = reflect.ValueOf(p.Claims).UnsafePointer()
	}
	if pr := s.profiles[k]; pr != nil {
		pr.refs++
		return pr.num
	}
	pr := &profile{p: *p, key: k, refs: 1}
	pr.p.Expiry, pr.p.tokenID = time.Time{}, ""
	if n := len(s.freeProf); n > 0 {
		pr.num, s.freeProf = s.freeProf[n-1], s.freeProf[:n-1]
		s.profs[pr.num-1] = pr
	} else {
		s.profs = append(s.profs, pr)
		pr.num = uint32(len(s.profs))
	}
	s.profiles[k] = pr
	return pr.num
}

// release drops one reference to profile num + 1.
func (s *store) release(num uint32) {
	if num == 0 {
		return
	}
	pr := s.profs[num-1]
	if pr.refs--; pr.refs == 0 {
		delete(s.profiles, pr.key)
		s.profs[num-1] = nil
		s.freeProf = append(s.freeProf, num)
	}
}
