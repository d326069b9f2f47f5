package proxy

import (
	"context"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/queue"
	"github.com/tokengate/tokengate/verifier"
)

// BenchmarkHandlerQueued is one webhook through a queued route with a
// cached token: the handler stores it in a real file store (group
// commits, fsync) and answers 202, while the queue's worker delivers it
// to an upstream without a network and settles it. allocs/op and B/op
// count the whole gate's work per message but the network's (the
// worker's too: the runtime counts every goroutine); ns/op is bound by
// the disk. Senders run in parallel, as senders do.
func BenchmarkHandlerQueued(b *testing.B) {
	cfg, err := config.Parse([]byte(`upstream: http://127.0.0.1:1
issuers: [{name: idp, issuer: 'https://idp/', audiences: [a]}]
queue: { store: "file:///unused" }
routes: [{name: q, path_prefix: /hooks, methods: [POST], require: {scopes: ['webhooks:write']}, delivery: {mode: queued, concurrency: 16}}]
`), b.TempDir(), config.Options{})
	if err != nil {
		b.Fatal(err)
	}
	cache, _ := verifier.NewCache(verifier.Func(func(context.Context, string) (*verifier.Principal, error) {
		return &verifier.Principal{Source: "idp", Subject: "aftership", ClientID: "aftership", Scopes: []string{"webhooks:write"}, Expiry: time.Now().Add(time.Hour)}, nil
	}), verifier.CacheOptions{MaxEntries: 10, MaxTTL: time.Hour})
	store, err := queue.OpenFile(queue.FileOptions{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	target, _ := url.Parse("http://127.0.0.1:1")
	q, err := queue.New(store, queue.Options{Routes: []queue.RouteOptions{{Name: "q", Concurrency: 16, MaxAttempts: 5, Timeout: time.Second,
		BackoffInitial: time.Second, BackoffMax: time.Minute}}, Target: target, Transport: instantUpstream{}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = q.Run(ctx); close(done) }()
	defer func() { stop(); <-done }()
	h, err := New(cfg, cache, Options{Transport: instantUpstream{}, Logger: zap.NewNop(), Queue: q})
	if err != nil {
		b.Fatal(err)
	}
	token := strings.Repeat("eyJhbGciOiJSUzI1NiJ9.", 40)
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, benchRequest(token))
			if w.Code != 202 {
				b.Errorf("status %d: %s", w.Code, w.Body)
				return
			}
		}
	})
}
