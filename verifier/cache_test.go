package verifier

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengate/tokengate/verifier/verifiertest"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newCache(t *testing.T, next Verifier, clk *clock) *Cache {
	t.Helper()
	c, err := NewCache(next, CacheOptions{MaxEntries: 100, MaxTTL: 5 * time.Minute, NegativeTTL: 10 * time.Second, NegativeMaxEntries: 10, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCachedTokenMakesNoSecondCall(t *testing.T) {
	in := verifiertest.NewIntrospector()
	defer in.Close()
	in.Add("tok", verifiertest.ActiveClaims("x", time.Hour))
	clk := &clock{t: time.Now()}
	c := newCache(t, newIntrospection(t, in, nil), clk)
	for range 5 {
		if _, err := c.Verify(context.Background(), "tok"); err != nil {
			t.Fatal(err)
		}
	}
	if in.Calls() != 1 {
		t.Fatalf("introspection calls = %d, want 1", in.Calls())
	}
	// Past max TTL the entry is verified again.
	clk.Add(5*time.Minute + time.Second)
	if _, err := c.Verify(context.Background(), "tok"); err != nil || in.Calls() != 2 {
		t.Fatalf("after max TTL: err=%v calls=%d, want a second call", err, in.Calls())
	}
}

func TestCacheEntryNeverOutlivesTokenExpiry(t *testing.T) {
	in := verifiertest.NewIntrospector()
	defer in.Close()
	in.Add("tok", verifiertest.ActiveClaims("x", 30*time.Second))
	clk := &clock{t: time.Now()}
	c := newCache(t, newIntrospection(t, in, func(o *IntrospectionOptions) { o.Now = clk.Now }), clk)
	if _, err := c.Verify(context.Background(), "tok"); err != nil {
		t.Fatal(err)
	}
	clk.Add(31 * time.Second) // token expired; max TTL (5m) not reached
	_, err := c.Verify(context.Background(), "tok")
	if !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("expired token served from cache: err = %v", err)
	}
	if in.Calls() != 2 {
		t.Fatalf("calls = %d, want the expired entry dropped and the token asked about again", in.Calls())
	}
}

func TestNegativeCacheOnlyForRemoteRejections(t *testing.T) {
	in := verifiertest.NewIntrospector()
	defer in.Close()
	clk := &clock{t: time.Now()}
	c := newCache(t, newIntrospection(t, in, nil), clk)
	for range 3 {
		if _, err := c.Verify(context.Background(), "inactive"); Reason(err) != "token is not active" {
			t.Fatalf("err = %v", err)
		}
	}
	if in.Calls() != 1 {
		t.Fatalf("inactive token: %d calls, want 1 (negative cache)", in.Calls())
	}
	clk.Add(11 * time.Second)
	_, _ = c.Verify(context.Background(), "inactive")
	if in.Calls() != 2 {
		t.Fatalf("after negative TTL: %d calls, want 2", in.Calls())
	}
	// Local rejections are not cached.
	var local atomic.Int64
	lc := newCache(t, Func(func(context.Context, string) (*Principal, error) {
		local.Add(1)
		return nil, invalid("signature verification failed", nil)
	}), clk)
	for range 3 {
		_, _ = lc.Verify(context.Background(), "forged")
	}
	if local.Load() != 3 {
		t.Fatalf("local rejection cached: %d verifications, want 3", local.Load())
	}
}

func TestUnavailableIsNeverCached(t *testing.T) {
	in := verifiertest.NewIntrospector()
	defer in.Close()
	in.Add("tok", verifiertest.ActiveClaims("x", time.Hour))
	in.SetStatus(503)
	c := newCache(t, newIntrospection(t, in, nil), &clock{t: time.Now()})
	if _, err := c.Verify(context.Background(), "tok"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
	in.SetStatus(0)
	if _, err := c.Verify(context.Background(), "tok"); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

func TestConcurrentMissesCoalesce(t *testing.T) {
	in := verifiertest.NewIntrospector()
	defer in.Close()
	in.Add("tok", verifiertest.ActiveClaims("x", time.Hour))
	in.SetDelay(50 * time.Millisecond)
	c := newCache(t, newIntrospection(t, in, nil), &clock{t: time.Now()})
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 100 {
		wg.Go(func() {
			<-start
			if _, err := c.Verify(context.Background(), "tok"); err != nil {
				t.Error(err)
			}
		})
	}
	close(start)
	wg.Wait()
	if in.Calls() != 1 {
		t.Fatalf("100 concurrent requests made %d introspection calls, want 1", in.Calls())
	}
	if s := c.Stats(); s.Verifications != 1 {
		t.Fatalf("stats = %+v", s)
	}
}

func TestCacheKeyIsNotTheToken(t *testing.T) {
	k := cacheKey("secret-token")
	if string(k[:]) == "secret-token" || k == cacheKey("secret-token2") {
		t.Fatal("cache key must be a hash of the token")
	}
}

func TestExpiredEntriesDoNotAccumulate(t *testing.T) {
	clk := &clock{t: time.Now()}
	var n atomic.Int64
	c, err := NewCache(Func(func(context.Context, string) (*Principal, error) {
		n.Add(1)
		return &Principal{Expiry: clk.Now().Add(time.Minute)}, nil
	}), CacheOptions{MaxEntries: 100000, MaxTTL: time.Hour, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	// A stream of short-lived tokens: one new token a second for an hour.
	for i := range 3600 {
		if _, err := c.Verify(context.Background(), fmt.Sprintf("token-%d", i)); err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Second)
	}
	if got := c.Len(); got > 70 {
		t.Fatalf("%d entries kept for ~60 live tokens: expired entries pile up until capacity", got)
	}
}
