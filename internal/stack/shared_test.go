package stack

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/signature/redistest"
)

// limitedYAML is a public route limited per client address, and another
// route; limit is the first route's rate_limit.
func limitedYAML(upstream, limit, extraRoute string) string {
	return fmt.Sprintf(`
upstream: %s
routes:
  - name: status
    path: /status
    public: true
    rate_limit: %s
  - path: /other
    public: true
%s`, upstream, limit, extraRoute)
}

func statusOf(t *testing.T, h http.Handler) int {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/status", nil)
	req.RemoteAddr = "192.0.2.7:4000"
	h.ServeHTTP(rec, req)
	return rec.Code
}

// TestReloadKeepsUnchangedRouteBuckets: a reload that leaves a route's
// rate_limit alone keeps its in-memory buckets (a sender past its limit
// stays past it); a reload that changes the limit starts them afresh; a
// failed build (aborted) changes nothing.
func TestReloadKeepsUnchangedRouteBuckets(t *testing.T) {
	recv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer recv.Close()
	b := NewBuilder(Options{})
	build := func(y string) *Stack {
		t.Helper()
		cfg, err := config.Parse([]byte(y), t.TempDir(), config.Options{})
		if err != nil {
			t.Fatal(err)
		}
		st, err := b.Build(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	const limit = "{ key: remote_ip, rate: 1/h, burst: 1 }"
	st := build(limitedYAML(recv.URL, limit, ""))
	b.CommitReplay()
	if c := statusOf(t, st.Handler()); c != http.StatusOK {
		t.Fatalf("first request: %d", c)
	}
	if c := statusOf(t, st.Handler()); c != http.StatusTooManyRequests {
		t.Fatalf("second request: %d, want 429", c)
	}
	// A build that is aborted, with another limit, changes nothing.
	build(limitedYAML(recv.URL, "{ key: remote_ip, rate: 1/h, burst: 5 }", ""))
	b.AbortReplay()
	// Another route added: the status route's limit is unchanged.
	st = build(limitedYAML(recv.URL, limit, "  - { path: /new, public: true }\n"))
	b.CommitReplay()
	if c := statusOf(t, st.Handler()); c != http.StatusTooManyRequests {
		t.Fatalf("after a reload that kept the limit: %d, want 429 (the bucket must survive)", c)
	}
	st = build(limitedYAML(recv.URL, "{ key: remote_ip, rate: 1/h, burst: 2 }", ""))
	b.CommitReplay()
	if c := statusOf(t, st.Handler()); c != http.StatusOK {
		t.Fatalf("after a reload that changed the limit: %d, want a fresh bucket", c)
	}
}

// TestOneRedisClientPerBlockAcrossReloads: the redis: block's client is
// kept while its url and timeout are unchanged, replaced when they
// change, closed when a build is aborted or the builder closed.
func TestOneRedisClientPerBlockAcrossReloads(t *testing.T) {
	srv := redistest.Start(t)
	b := NewBuilder(Options{})
	defer b.Close()
	build := func(redis string) *sharedRedis {
		t.Helper()
		cfg, err := config.Parse([]byte("upstream: http://127.0.0.1:9\nroutes: [{ path: /a, public: true }]\n"+redis), t.TempDir(), config.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Build(cfg, nil); err != nil {
			t.Fatal(err)
		}
		return b.redisNext
	}
	first := build(fmt.Sprintf("redis: { url: %q }\n", srv.URL()))
	b.CommitReplay()
	if first == nil || b.redisCur != first {
		t.Fatal("the redis: block built no client")
	}
	if again := build(fmt.Sprintf("redis: { url: %q }\n", srv.URL())); again != first {
		t.Fatal("an unchanged redis: block got a new client")
	}
	b.CommitReplay()
	other := build(fmt.Sprintf("redis: { url: %q, timeout: 2s }\n", srv.URL()))
	if other == first {
		t.Fatal("a changed timeout kept the client")
	}
	b.AbortReplay()
	if err := other.client.Ping(t.Context()).Err(); err == nil {
		t.Fatal("the client of an aborted build is still open")
	}
	if b.redisCur != first || first.client.Ping(t.Context()).Err() != nil {
		t.Fatal("an aborted build touched the serving client")
	}
	if none := build(""); none != nil {
		t.Fatal("no redis: block, yet a client")
	}
	b.CommitReplay()
	if b.redisCur != nil {
		t.Fatal("a reload that removed the redis: block kept its client")
	}
}
