package proxy

import "strings"

// linearRoutes is the size up to which trying every route is as fast as
// looking them up.
const linearRoutes = 8

// routeIndex finds the first matching route without trying every route:
// the candidates of a request are the routes of its host and of any host,
// whose exact path is the request's path or whose prefix is the path or
// one of its parents, plus the prefix-"/" routes. The candidate with the
// lowest position in the configuration that also passes route.matches
// (methods) wins, so the result is exactly matchLinear's.
type routeIndex struct {
	routes []*route
	byHost map[string]*pathIndex // lower-case ASCII host → its routes
	any    pathIndex             // routes without a host
	// folded are routes whose host is not ASCII: Unicode case folding
	// (strings.EqualFold) can match them to an ASCII host, so they are
	// tried for every request.
	folded []int32
}

// pathIndex holds the positions (ascending) of routes by path condition.
type pathIndex struct {
	exact  map[string][]int32
	prefix map[string][]int32
	all    []int32 // prefix "/", or no path condition at all
}

func newRouteIndex(routes []*route) *routeIndex {
	x := &routeIndex{routes: routes, byHost: map[string]*pathIndex{}}
	for i, r := range routes {
		pos := int32(i)
		switch {
		case r.host == "":
			x.any.add(r, pos)
		case !isASCII(r.host):
			x.folded = append(x.folded, pos)
		default:
			p := x.byHost[r.host]
			if p == nil {
				p = &pathIndex{}
				x.byHost[r.host] = p
			}
			p.add(r, pos)
		}
	}
	return x
}

func (p *pathIndex) add(r *route, pos int32) {
	put := func(m *map[string][]int32, k string) {
		if *m == nil {
			*m = map[string][]int32{}
		}
		(*m)[k] = append((*m)[k], pos)
	}
	switch {
	case r.exact != "":
		put(&p.exact, r.exact) // a prefix, if also set, is checked by matches
	case r.prefix != "" && r.prefix != "/":
		put(&p.prefix, r.prefix)
	default:
		p.all = append(p.all, pos)
	}
}

// of reports whether x was built for exactly this list.
func (x *routeIndex) of(routes []*route) bool {
	return x != nil && len(x.routes) == len(routes) && &x.routes[0] == &routes[0]
}

func (x *routeIndex) match(method, hostport, cleaned string) (*route, int) {
	host := hostOnly(hostport)
	if len(x.routes) <= linearRoutes {
		return matchLinear(x.routes, method, host, cleaned)
	}
	return x.lookup(method, host, cleaned)
}

// lookup is match through the index, for any number of routes; it also
// says how many routes it tried.
func (x *routeIndex) lookup(method, host, cleaned string) (*route, int) {
	if !isASCII(host) {
		// A non-ASCII host may fold onto an ASCII one (U+212A KELVIN SIGN
		// onto "k"): only the definition itself is exact for it.
		return matchLinear(x.routes, method, host, cleaned)
	}
	f := finder{routes: x.routes, method: method, host: host, cleaned: cleaned, best: -1}
	f.try(x.folded)
	x.any.candidates(&f)
	if len(x.byHost) > 0 {
		if p := x.byHost[asciiLower(host)]; p != nil {
			p.candidates(&f)
		}
	}
	if f.best < 0 {
		return nil, f.tried
	}
	return x.routes[f.best], f.tried
}

// finder keeps the lowest matching position seen so far.
type finder struct {
	routes                []*route
	method, host, cleaned string
	best                  int32
	tried                 int
}

// try checks the candidates of list (ascending positions) up to the best
// found so far.
func (f *finder) try(list []int32) {
	for _, i := range list {
		if f.best >= 0 && i >= f.best {
			return
		}
		f.tried++
		if f.routes[i].matches(f.method, f.host, f.cleaned) {
			f.best = i
			return
		}
	}
}

// candidates tries the routes whose path condition may hold for the
// path: its exact routes, the prefix routes of the path itself and of
// every path[:i] with path[i] == '/' (HasPrefix(path, prefix+"/") holds
// exactly for those), and the routes of every path.
func (p *pathIndex) candidates(f *finder) {
	cleaned := f.cleaned
	if p.exact != nil {
		f.try(p.exact[cleaned])
	}
	if p.prefix != nil {
		f.try(p.prefix[cleaned])
		for i := len(cleaned) - 1; i > 0; i-- {
			if cleaned[i] == '/' {
				f.try(p.prefix[cleaned[:i]])
			}
		}
	}
	f.try(p.all)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// asciiLower lower-cases an ASCII string, allocating only when it has an
// upper-case letter.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}
