package queue

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// runQueue runs q until the test ends.
func runQueue(t *testing.T, q *Queue) {
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- q.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		select {
		case <-ran:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10s of its context ending")
		}
	})
}

func enqueueOn(t *testing.T, q *Queue, route, body string) {
	t.Helper()
	must(t, q.Enqueue(context.Background(), &Message{Route: route, Method: http.MethodPost, Path: "/" + route, Body: []byte(body)}))
}

func storedCount(s Store) int64 {
	st, _ := s.Stats(context.Background())
	var n int64
	for _, r := range st {
		n += r.Pending + r.Dead
	}
	return n
}

// TestReloadAddsChangesAndKeepsRoutes: a reload's queued routes apply
// while the queue runs: a new route is delivered at once, a changed
// route's settings apply to its next attempts, and a route the reload
// no longer queues is still delivered (its messages were acknowledged).
func TestReloadAddsChangesAndKeepsRoutes(t *testing.T) {
	rc := newReceiver(t)
	rc.answerWith(http.StatusServiceUnavailable, nil, "down")
	s, err := OpenFile(FileOptions{Dir: t.TempDir()})
	must(t, err)
	t.Cleanup(func() { s.Close() })
	q, err := New(s, Options{Routes: []RouteOptions{{Name: "old", BackoffInitial: time.Hour}}, Target: mustURL(rc.URL), Poll: 20 * time.Millisecond})
	must(t, err)
	runQueue(t, q)
	enqueueOn(t, q, "old", "1")
	waitFor(t, "the first attempt", func() bool { return len(rc.got()) >= 1 })

	if err := q.Enqueue(context.Background(), &Message{Route: "new", Method: http.MethodPost, Path: "/new"}); err == nil {
		t.Fatal("a route the queue does not know was stored")
	}
	rc.answerWith(http.StatusOK, nil, "")
	must(t, q.SetRoutes([]RouteOptions{{Name: "new"}})) // "old" is no longer queued
	enqueueOn(t, q, "new", "2")
	waitFor(t, "the new route's message delivered", func() bool { return storedCount(s) == 1 })
	must(t, q.Retry(context.Background(), mustList(t, s, "old")[0].ID)) // due now, despite the hour of backoff
	waitFor(t, "the dropped route's stored message delivered", func() bool { return storedCount(s) == 0 })
	if err := q.SetRoutes([]RouteOptions{{Name: "a"}, {Name: "a"}}); err == nil {
		t.Fatal("a route given twice was accepted")
	}
}

func mustList(t *testing.T, s Store, route string) []*Message {
	t.Helper()
	ms, err := s.List(context.Background(), route, Pending, 0)
	must(t, err)
	if len(ms) == 0 {
		t.Fatalf("no pending message on %s", route)
	}
	return ms
}

// TestStoredRouteNoLongerConfiguredIsDelivered: messages stored for a
// route that a restart's configuration no longer queues are still
// delivered, with the default settings.
func TestStoredRouteNoLongerConfiguredIsDelivered(t *testing.T) {
	rc := newReceiver(t)
	dir := t.TempDir()
	s, err := OpenFile(FileOptions{Dir: dir})
	must(t, err)
	q, err := New(s, Options{Routes: []RouteOptions{{Name: "gone"}}, Target: mustURL(rc.URL)})
	must(t, err)
	enqueueOn(t, q, "gone", "acknowledged")
	must(t, s.Close())

	s, err = OpenFile(FileOptions{Dir: dir})
	must(t, err)
	t.Cleanup(func() { s.Close() })
	q, err = New(s, Options{Routes: []RouteOptions{{Name: "other"}}, Target: &url.URL{Scheme: "http", Host: mustURL(rc.URL).Host}, Poll: 20 * time.Millisecond})
	must(t, err)
	runQueue(t, q)
	waitFor(t, "the unconfigured route's message delivered", func() bool { return storedCount(s) == 0 })
	if got := rc.got(); len(got) != 1 || got[0].body != "acknowledged" {
		t.Fatalf("receiver got %+v", got)
	}
}

// fillingStore opens a file store in dir whose commits fail, as on a full
// disk, while the returned flag is set.
func fillingStore(t *testing.T, dir string) (*FileStore, *atomic.Bool) {
	t.Helper()
	full := new(atomic.Bool)
	s, err := OpenFile(FileOptions{Dir: dir, fault: func() error {
		if full.Load() {
			return errors.New("no space left on device")
		}
		return nil
	}})
	must(t, err)
	t.Cleanup(func() { s.Close() })
	return s, full
}

// TestAttemptWhoseOutcomeCannotBeWrittenIsTriedAgain: while the store
// cannot be written (a full disk), an attempt's outcome is lost; the
// message must not stay leased in the running gate (stuck until a
// restart): once writes work again it is attempted and delivered.
func TestAttemptWhoseOutcomeCannotBeWrittenIsTriedAgain(t *testing.T) {
	rc := newReceiver(t)
	rc.answerWith(http.StatusServiceUnavailable, nil, "down")
	s, full := fillingStore(t, t.TempDir())
	q, err := New(s, Options{Routes: []RouteOptions{{Name: "gh", BackoffInitial: 10 * time.Millisecond, BackoffMax: 10 * time.Millisecond}}, Target: mustURL(rc.URL), Poll: 20 * time.Millisecond})
	must(t, err)
	enqueueOn(t, q, "gh", "acknowledged")
	full.Store(true)
	runQueue(t, q)
	waitFor(t, "an attempt while the disk is full", func() bool { return len(rc.got()) >= 1 })
	rc.answerWith(http.StatusOK, nil, "")
	full.Store(false)
	waitFor(t, "the message delivered once the store takes writes again", func() bool { return storedCount(s) == 0 })
}

// TestDeadLetterIsLoggedOnlyOnceStored: an attempt that makes a message a
// dead letter while the store cannot be written logs that the outcome
// could not be recorded, not that the message is now a dead letter (it
// stays pending; an outside attack read "now a dead letter" twice for one
// message that never became one); once stored, it says so once.
func TestDeadLetterIsLoggedOnlyOnceStored(t *testing.T) {
	rc := newReceiver(t)
	rc.answerWith(http.StatusBadRequest, nil, "never")
	s, full := fillingStore(t, t.TempDir())
	core, logs := observer.New(zap.WarnLevel)
	var later atomic.Int64 // what the queue's clock is ahead: the failed write makes it due 5 s later
	now := func() time.Time { return time.Now().Add(time.Duration(later.Load())) }
	q, err := New(s, Options{Routes: []RouteOptions{{Name: "gh"}}, Target: mustURL(rc.URL), Logger: zap.New(core), Now: now})
	must(t, err)
	enqueueOn(t, q, "gh", "refused")
	full.Store(true)
	if n := deliverDue(t, q); n != 1 {
		t.Fatalf("attempted %d", n)
	}
	if n := logs.FilterMessage("queue: a message is now a dead letter").Len(); n != 0 {
		t.Fatalf("a dead letter that could not be stored was logged as one %d times", n)
	}
	if logs.FilterMessage("queue: could not record an attempt; the message is attempted again").Len() == 0 {
		t.Fatal("the unrecorded outcome was not logged")
	}
	full.Store(false)
	later.Store(int64(time.Minute))
	if n := deliverDue(t, q); n != 1 {
		t.Fatalf("attempted again: %d", n)
	}
	if n := logs.FilterMessage("queue: a message is now a dead letter").Len(); n != 1 {
		t.Fatalf("the stored dead letter was logged %d times, want once", n)
	}
}
