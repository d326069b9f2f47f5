package status

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// DefaultCacheFor is how long a rendered status is served again.
const DefaultCacheFor = time.Second

// CacheOptions configure a Cache.
type CacheOptions struct {
	// CacheFor is how long one build of the snapshot (and its page and
	// JSON) answers every request; default DefaultCacheFor.
	CacheFor time.Duration
	// Now is the clock the age is read by; default time.Now.
	Now func() time.Time
}

// Cache serves a Source's status page and JSON from one build of the
// snapshot at a time: a build answers every request for CacheFor, and
// requests that arrive while one runs wait for it instead of starting
// another. Building and rendering cost many times a /healthz: without it,
// a few dozen connections asking for the page would take the CPU from
// the public listener. Invalidate drops the build (after a reload, whose
// result should show at once).
type Cache struct {
	src   Source
	o     CacheOptions
	group singleflight.Group

	mu  sync.Mutex
	gen uint64    // Invalidate calls; a build of an older one is not kept
	cur *rendered // nil: none yet, or invalidated
}

// rendered is one build: the page and the JSON of one snapshot.
type rendered struct {
	at            time.Time
	page, json    []byte
	pageErr, jErr error
}

// NewCache returns a Cache of src.
func NewCache(src Source, o CacheOptions) *Cache {
	if o.CacheFor <= 0 {
		o.CacheFor = DefaultCacheFor
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Cache{src: src, o: o}
}

// Invalidate makes the next request build anew.
func (c *Cache) Invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.cur = nil
}

// get returns a build younger than CacheFor, making one (or waiting for
// the one being made) when there is none. The build does not end with
// the request that started it: the others waiting share it.
func (c *Cache) get(r *http.Request) *rendered {
	c.mu.Lock()
	gen, cur := c.gen, c.cur
	c.mu.Unlock()
	if cur != nil && c.o.Now().Sub(cur.at) < c.o.CacheFor {
		return cur
	}
	v, _, _ := c.group.Do(strconv.FormatUint(gen, 10), func() (any, error) {
		c.mu.Lock()
		if cur := c.cur; cur != nil && c.gen == gen && c.o.Now().Sub(cur.at) < c.o.CacheFor {
			c.mu.Unlock()
			return cur, nil // built while this caller waited for the flight
		}
		c.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), statusTimeout)
		defer cancel()
		b := build(c.src.Status(ctx))
		b.at = c.o.Now()
		c.mu.Lock()
		if c.gen == gen {
			c.cur = b
		}
		c.mu.Unlock()
		return b, nil
	})
	return v.(*rendered)
}

// build renders s as the page and as JSON.
func build(s Snapshot) *rendered {
	b := &rendered{}
	var page bytes.Buffer
	if b.pageErr = pageTemplate.Execute(&page, view{s}); b.pageErr == nil {
		b.page = page.Bytes()
	}
	if j, err := json.MarshalIndent(s, "", "  "); err == nil {
		b.json = append(j, '\n')
	} else {
		b.jErr = err
	}
	return b
}

// Page serves the status page: HTML rendered on the server, every value
// escaped by html/template.
func (c *Cache) Page() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := c.get(r)
		if b.pageErr != nil {
			failed(w, "status page: rendering failed")
			return
		}
		securityHeaders(w, "text/html; charset=utf-8")
		_, _ = w.Write(b.page)
	})
}

// JSON serves the same snapshot as the page, as JSON.
func (c *Cache) JSON() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := c.get(r)
		if b.jErr != nil {
			failed(w, "status: encoding failed")
			return
		}
		securityHeaders(w, "application/json")
		_, _ = w.Write(b.json)
	})
}

func failed(w http.ResponseWriter, msg string) {
	securityHeaders(w, "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = w.Write([]byte(msg + "\n"))
}
