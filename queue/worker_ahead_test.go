package queue

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// TestDropReachesAMessageLeasedAhead: a message the worker leased ahead
// (waiting for a slot behind a slow attempt) and an operator dropped
// meanwhile is not attempted (an outside attack saw dropped messages
// delivered up to 5.5 s after "dropped"), on every store.
func TestDropReachesAMessageLeasedAhead(t *testing.T) {
	for _, k := range storeKinds(t) {
		t.Run(k.name, func(t *testing.T) {
			s := k.open(t, 0)
			rc := newReceiver(t)
			started, release := make(chan string, 10), make(chan struct{})
			rc.answer = func(w http.ResponseWriter, r *http.Request) {
				started <- r.URL.Path
				<-release // the first attempt holds the route's one slot
			}
			q, err := New(s, Options{Routes: []RouteOptions{{Name: "gh", Concurrency: 1}}, Target: mustURL(rc.URL), Grace: 5 * time.Second})
			must(t, err)
			first := &Message{Route: "gh", Method: http.MethodPost, Path: "/first"}
			second := &Message{Route: "gh", Method: http.MethodPost, Path: "/second"}
			must(t, q.Enqueue(context.Background(), first))
			must(t, q.Enqueue(context.Background(), second))
			ctx, stop := context.WithCancel(context.Background())
			ran := make(chan error, 1)
			go func() { ran <- q.Run(ctx) }()
			select {
			case p := <-started:
				if p != "/first" {
					t.Fatalf("first attempt for %s", p)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no attempt started within 10s")
			}
			must(t, q.Drop(context.Background(), second.ID)) // leased ahead by now (Prefetch), waiting for the slot
			time.Sleep(2 * recheckAfter)                     // it has waited long enough to be asked about
			close(release)
			select {
			case p := <-started:
				t.Fatalf("the dropped message was attempted (%s)", p)
			case <-time.After(time.Second):
			}
			stop()
			select {
			case <-ran:
			case <-time.After(20 * time.Second):
				t.Fatal("Run did not return within 20s of its context ending")
			}
			for _, h := range rc.got() {
				if h.path == "/second" {
					t.Fatal("the dropped message reached the receiver")
				}
			}
		})
	}
}
