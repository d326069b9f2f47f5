package status

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// counting is a Source that counts its builds; each waits for release.
type counting struct {
	builds  atomic.Int64
	release chan struct{}
}

func (c *counting) Status(ctx context.Context) Snapshot {
	c.builds.Add(1)
	select {
	case <-c.release:
	case <-ctx.Done():
	}
	return evilSnapshot()
}

// TestCacheBuildsOncePerPeriod: 48 concurrent requests for the page and
// the JSON, started while the first build is still running, cause one
// build between them; once CacheFor has passed on the injected clock the
// next request builds again, and so does the next after Invalidate.
func TestCacheBuildsOncePerPeriod(t *testing.T) {
	src := &counting{release: make(chan struct{})}
	var now atomic.Int64
	now.Store(time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC).UnixNano())
	c := NewCache(src, CacheOptions{Now: func() time.Time { return time.Unix(0, now.Load()) }})
	handlers := []http.Handler{c.Page(), c.JSON()}
	get := func(h http.Handler) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		return rec
	}
	const n = 48
	var started, done sync.WaitGroup
	codes := make(chan int, n)
	for i := range n {
		started.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			started.Done()
			rec := get(handlers[i%2])
			if i%2 == 1 && !strings.HasPrefix(rec.Body.String(), "{") {
				codes <- 0
				return
			}
			codes <- rec.Code
		}()
	}
	started.Wait()
	close(src.release)
	finished := make(chan struct{})
	go func() { done.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(30 * time.Second):
		t.Fatal("waited 30s for the requests to be answered")
	}
	close(codes)
	for code := range codes {
		if code != http.StatusOK {
			t.Fatalf("an answer %d (0: the JSON handler served the page)", code)
		}
	}
	if b := src.builds.Load(); b != 1 {
		t.Fatalf("%d builds for %d concurrent requests, want 1", b, n)
	}
	now.Add(int64(DefaultCacheFor - time.Nanosecond))
	get(handlers[0])
	if b := src.builds.Load(); b != 1 {
		t.Fatalf("%d builds within CacheFor, want 1", b)
	}
	now.Add(int64(time.Nanosecond))
	get(handlers[1])
	if b := src.builds.Load(); b != 2 {
		t.Fatalf("%d builds after CacheFor, want 2", b)
	}
	c.Invalidate()
	get(handlers[0])
	if b := src.builds.Load(); b != 3 {
		t.Fatalf("%d builds after Invalidate, want 3", b)
	}
}
