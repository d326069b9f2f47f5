package proxy

import (
	"errors"
	"net/netip"
	"sync"
)

// Refusals of the signed-body budget (503 with Retry-After).
var (
	// errBodyBudget: the signed bodies held at once reached
	// signatures.body_memory.
	errBodyBudget = errors.New("too many signed bodies in flight")
	// errClientBudget: the client's address holds its share of
	// signatures.body_memory already.
	errClientBudget = errors.New("too many signed bodies in flight from this client")
)

// clientShares: one client address may hold 1/clientShares of the budget
// (or one body of the route's max_body_size, if that is more).
const clientShares = 16

// bodyBudget bounds the bytes of signed bodies held at once, in all
// (signatures.body_memory) and per client address. A request is charged
// for the buffer it has grown to hold the bytes it has read (never for
// the Content-Length it announces, nothing before its first byte), in
// steps of at most double what it holds, so a sender that announces a
// large body and sends little holds little, and one address (one sender,
// however many connections or streams it opens) cannot take the budget
// from the others.
type bodyBudget struct {
	mu   sync.Mutex
	max  int64
	used int64
	held map[string]int64 // by clientKey
}

func newBodyBudget(max int64) *bodyBudget {
	return &bodyBudget{max: max, held: map[string]int64{}}
}

// share is what one client address may hold while it sends to a route
// whose bodies are at most routeMax: max(budget/16, routeMax), so that
// one address can always send one body of the largest size the route
// takes, and it takes at most a 16th of the budget when the budget is at
// least 16 bodies.
func (b *bodyBudget) share(routeMax int64) int64 {
	return max(b.max/clientShares, routeMax)
}

// reserve charges n bytes to client, within its share and the budget.
func (b *bodyBudget) reserve(client string, n, share int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held[client]+n > share {
		return errClientBudget
	}
	if b.used+n > b.max {
		return errBodyBudget
	}
	b.used += n
	b.held[client] += n
	return nil
}

// release returns n bytes charged to client.
func (b *bodyBudget) release(client string, n int64) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	if b.held[client] -= n; b.held[client] <= 0 {
		delete(b.held, client)
	}
}

// clientKey names the sender a share is charged to: its address as the
// gate resolves it (Forwarding.ClientIP: a trusted proxy's
// X-Forwarded-For respected), an IPv6 address by its /64 (one host
// commonly holds a whole /64).
func clientKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	if a = a.Unmap(); a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return ip
}
