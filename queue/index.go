package queue

import (
	"container/heap"
	"slices"
	"strings"
	"time"
)

// dueItem schedules one message; stale items (an older gen) are skipped.
type dueItem struct {
	next time.Time
	id   string
	gen  uint64
}

// dueHeap orders a route's pending messages by due time.
type dueHeap struct{ items []dueItem }

func (h *dueHeap) Len() int { return len(h.items) }
func (h *dueHeap) Less(i, j int) bool {
	a, b := h.items[i], h.items[j]
	if !a.next.Equal(b.next) {
		return a.next.Before(b.next)
	}
	return a.id < b.id
}
func (h *dueHeap) Swap(i, j int) { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *dueHeap) Push(x any)    { h.items = append(h.items, x.(dueItem)) }
func (h *dueHeap) Pop() any {
	it := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return it
}

func (h *dueHeap) push(it dueItem) { heap.Push(h, it) }
func (h *dueHeap) pop() dueItem    { return heap.Pop(h).(dueItem) }
func (h *dueHeap) peek() dueItem   { return h.items[0] }

// oldestFirst returns the ids of up to limit entries that keep passes,
// by arrival (ids are time-ordered too).
func oldestFirst(idx map[string]*entry, keep func(*entry) bool, limit int) []string {
	var ids []string
	for id, e := range idx {
		if keep(e) {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(a, b string) int {
		if c := idx[a].received.Compare(idx[b].received); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	if limit > 0 && len(ids) > limit {
		ids = ids[:limit]
	}
	return ids
}

// statsOf counts an index per route, by route name.
func statsOf(idx map[string]*entry) []RouteStats {
	by := map[string]*RouteStats{}
	for _, e := range idx {
		rs := by[e.route]
		if rs == nil {
			rs = &RouteStats{Route: e.route}
			by[e.route] = rs
		}
		rs.Bytes += e.size
		if e.state == Dead {
			rs.Dead++
			continue
		}
		rs.Pending++
		if rs.Oldest.IsZero() || e.received.Before(rs.Oldest) {
			rs.Oldest = e.received
		}
	}
	out := make([]RouteStats, 0, len(by))
	for _, rs := range by {
		out = append(out, *rs)
	}
	sortStats(out)
	return out
}

func sortStats(s []RouteStats) {
	slices.SortFunc(s, func(a, b RouteStats) int { return strings.Compare(a.Route, b.Route) })
}
