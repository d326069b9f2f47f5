package status

import (
	"sort"
	"sync"
	"time"

	"github.com/tokengate/tokengate/proxy"
)

// Window is how many minutes of requests a Traffic keeps.
const Window = 15

// maxRoutes bounds the routes a Traffic counts (route names come from the
// configuration, so this is only a guard); past it, requests of a route
// not yet counted are counted under OtherRoutes.
const maxRoutes = 1024

// OtherRoutes is the route name requests are counted under once maxRoutes
// routes are counted.
const OtherRoutes = "(other)"

// Traffic counts the public listener's requests by route and decision in
// one-minute buckets over the last Window minutes. Safe for concurrent
// use; Record takes one short lock.
type Traffic struct {
	now func() time.Time

	mu     sync.Mutex
	routes map[string]*ring
}

// ring is one route's buckets, indexed by minute modulo Window.
type ring [Window]bucket

// bucket is one minute's counts by decision.
type bucket struct {
	minute int64 // Unix minute the counts belong to
	counts map[string]uint64
}

// NewTraffic returns an empty Traffic reading the clock now (nil:
// time.Now).
func NewTraffic(now func() time.Time) *Traffic {
	if now == nil {
		now = time.Now
	}
	return &Traffic{now: now, routes: map[string]*ring{}}
}

// Record counts one request of route with decision
// (telemetry.RequestRecorder).
func (t *Traffic) Record(route, decision string) {
	minute := t.now().Unix() / 60
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.routes[route]
	if r == nil {
		if len(t.routes) >= maxRoutes {
			route = OtherRoutes
			r = t.routes[route]
		}
		if r == nil {
			r = new(ring)
			t.routes[route] = r
		}
	}
	b := &r[minute%Window]
	if b.minute != minute || b.counts == nil {
		b.minute, b.counts = minute, map[string]uint64{}
	}
	b.counts[decision]++
}

// Minute is one minute's requests of a route.
type Minute struct {
	// Start is the minute's start.
	Start time.Time `json:"start"`
	// Requests counts every request; Refused those refused.
	Requests uint64 `json:"requests"`
	Refused  uint64 `json:"refused"`
}

// Counts are a route's requests over the last Window minutes.
type Counts struct {
	// Requests counts every request, Refused the refused ones, and
	// ByDecision every request by decision (allow, invalid_token, …).
	Requests   uint64            `json:"requests"`
	Refused    uint64            `json:"refused"`
	ByDecision map[string]uint64 `json:"by_decision"`
	// Minutes are the per-minute counts, oldest first, the current
	// (partial) minute last: always Window of them.
	Minutes []Minute `json:"minutes"`
}

// Counts returns each route's counts over the last Window minutes, the
// current one included; a route without requests in it is left out (a
// route renamed by a reload disappears after Window minutes).
func (t *Traffic) Counts() map[string]Counts {
	now := t.now().Unix() / 60
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]Counts{}
	for route, r := range t.routes {
		c := empty(now)
		for i := range Window {
			m := now - Window + 1 + int64(i)
			b := &r[m%Window]
			if b.minute != m {
				continue
			}
			for d, n := range b.counts {
				c.ByDecision[d] += n
				c.Requests += n
				c.Minutes[i].Requests += n
				if Refusal(d) {
					c.Refused += n
					c.Minutes[i].Refused += n
				}
			}
		}
		if c.Requests == 0 {
			delete(t.routes, route) // nothing within the window: forget it
			continue
		}
		out[route] = c
	}
	return out
}

// Empty returns the counts of a route without requests in the window.
func (t *Traffic) Empty() Counts { return empty(t.now().Unix() / 60) }

// empty is Counts without requests for the window ending in minute now.
func empty(now int64) Counts {
	c := Counts{ByDecision: map[string]uint64{}, Minutes: make([]Minute, Window)}
	for i := range Window {
		c.Minutes[i].Start = time.Unix((now-Window+1+int64(i))*60, 0).UTC()
	}
	return c
}

// Refusal reports whether decision refused the request. Forwarded
// (allow, public), stored (queued) and already delivered (duplicate)
// requests are not refusals; every other decision (no_token,
// invalid_token, insufficient_scope, invalid_signature, unavailable, …)
// is.
func Refusal(decision string) bool {
	switch decision {
	case proxy.DecisionAllow, proxy.DecisionPublic, proxy.DecisionQueued, proxy.DecisionDuplicate:
		return false
	}
	return true
}

// Reasons lists the refusal reasons of c with their counts, most
// frequent first (ties by name).
func (c Counts) Reasons() []Reason {
	var out []Reason
	for d, n := range c.ByDecision {
		if Refusal(d) {
			out = append(out, Reason{d, n})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Reason < out[j].Reason
	})
	return out
}

// Reason is one refusal reason and how many requests it refused.
type Reason struct {
	Reason string `json:"reason"`
	Count  uint64 `json:"count"`
}
