package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"go.uber.org/zap"
)

// routeState is one route's options (replaced by a reload) and its
// worker's wake-up.
type routeState struct {
	name string
	opts sync.Mutex
	ro   RouteOptions
	wake chan struct{}
}

func newRouteState(ro RouteOptions) *routeState {
	return &routeState{name: ro.Name, ro: ro, wake: make(chan struct{}, 1)}
}

// options returns the route's current options.
func (rs *routeState) options() RouteOptions {
	rs.opts.Lock()
	defer rs.opts.Unlock()
	return rs.ro
}

func (rs *routeState) signal() {
	select {
	case rs.wake <- struct{}{}:
	default:
	}
}

// routeSet is an immutable name → route map, replaced whole.
type routeSet map[string]*routeState

// route returns the named route's state, nil when the queue has none.
func (q *Queue) route(name string) *routeState { return (*q.routes.Load())[name] }

// checkRoutes validates routes and fills their defaults.
func checkRoutes(routes []RouteOptions) ([]RouteOptions, error) {
	seen := map[string]bool{}
	out := make([]RouteOptions, 0, len(routes))
	for _, ro := range routes {
		if ro.Name == "" {
			return nil, errors.New("queue: a route without a name")
		}
		if seen[ro.Name] {
			return nil, fmt.Errorf("queue: route %q given twice", ro.Name)
		}
		seen[ro.Name] = true
		ro.defaults()
		out = append(out, ro)
	}
	return out, nil
}

// SetRoutes applies a reloaded configuration's queued routes: a route's
// new settings apply to its next attempts, a new route is delivered at
// once. A route the new configuration no longer queues keeps its last
// settings and is still delivered: its stored messages were acknowledged.
func (q *Queue) SetRoutes(routes []RouteOptions) error {
	routes, err := checkRoutes(routes)
	if err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	next := routeSet{}
	for name, rs := range *q.routes.Load() {
		next[name] = rs
	}
	var added []*routeState
	for _, ro := range routes {
		if rs := next[ro.Name]; rs != nil {
			rs.opts.Lock()
			rs.ro = ro
			rs.opts.Unlock()
			rs.signal() // its concurrency may have grown
			continue
		}
		rs := newRouteState(ro)
		next[ro.Name] = rs
		added = append(added, rs)
	}
	q.routes.Store(&next)
	for _, rs := range added {
		q.startRoute(rs)
	}
	return nil
}

// adoptStored gives every route that has stored messages but is not
// configured (it was removed while the gate was stopped) the default
// delivery settings, so what was acknowledged is still delivered.
func (q *Queue) adoptStored(ctx context.Context) {
	stats, err := q.store.Stats(ctx)
	if err != nil {
		q.log.Warn("queue: cannot list the stored routes; routes no longer configured are not delivered until a restart", zap.Error(err))
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	next := routeSet{}
	for name, rs := range *q.routes.Load() {
		next[name] = rs
	}
	for _, s := range stats {
		if next[s.Route] != nil {
			continue
		}
		ro := RouteOptions{Name: s.Route}
		ro.defaults()
		next[s.Route] = newRouteState(ro)
		q.log.Warn("queue: messages are stored for a route the configuration does not queue; they are delivered with the default settings",
			zap.String("route", s.Route), zap.Int64("pending", s.Pending), zap.Int64("dead", s.Dead))
	}
	q.routes.Store(&next)
}

// running is what Run shares with routes added while it runs.
type running struct {
	ctx, attempts context.Context
	wg            *sync.WaitGroup
}

// startRoute runs rs's worker if Run is running; q.mu is held.
func (q *Queue) startRoute(rs *routeState) {
	if r := q.run; r != nil {
		r.wg.Go(func() { q.runRoute(r.ctx, r.attempts, rs) })
	}
}

// RouteNames lists the routes the queue delivers, sorted: the configured
// ones and those kept for what they stored.
func (q *Queue) RouteNames() []string {
	set := *q.routes.Load()
	names := make([]string, 0, len(set))
	for name := range set {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}
