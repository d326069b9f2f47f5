package queue

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"
)

// clock is an injected clock the test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// hit is one attempt as the receiver saw it.
type hit struct {
	method, path, query, body, host string
	header                          http.Header
}

// receiver is a real HTTP receiver that records attempts and answers
// with answer (default 200).
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	hits   []hit
	answer func(w http.ResponseWriter, r *http.Request)
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.hits = append(rc.hits, hit{r.Method, r.URL.Path, r.URL.RawQuery, string(b), r.Host, r.Header.Clone()})
		a := rc.answer
		rc.mu.Unlock()
		if a != nil {
			a(w, r)
		}
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) got() []hit {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]hit(nil), rc.hits...)
}

func (rc *receiver) answerWith(status int, header http.Header, body string) {
	rc.mu.Lock()
	rc.answer = func(w http.ResponseWriter, r *http.Request) {
		for k, v := range header {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
	rc.mu.Unlock()
}

// newQueue is a queue over a fresh file store delivering to rc, on an
// injected clock, with jitter fixed at its top.
func newQueue(t *testing.T, rc *receiver, c *clock, ro RouteOptions) (*Queue, Store) {
	s, err := OpenFile(FileOptions{Dir: t.TempDir()})
	must(t, err)
	t.Cleanup(func() { s.Close() })
	target, _ := url.Parse(rc.URL + "/base")
	if ro.Name == "" {
		ro.Name = "gh"
	}
	q, err := New(s, Options{Routes: []RouteOptions{ro}, Target: target, Now: c.now, jitter: func() float64 { return 0.999999 }})
	must(t, err)
	return q, s
}

func deliverDue(t *testing.T, q *Queue) int {
	t.Helper()
	n, err := q.DeliverDue(context.Background())
	must(t, err)
	return n
}

func enqueue(t *testing.T, q *Queue, body string) *Message {
	t.Helper()
	m := &Message{Route: "gh", Method: http.MethodPost, Path: "/hooks/gh", Query: "x=1", Body: []byte(body),
		Header: http.Header{"Content-Type": {"application/json"}, "X-Tokengate-Attempt": {"99"}, "X_tokengate_delivery_id": {"spoofed"}}}
	must(t, q.Enqueue(context.Background(), m))
	return m
}

// TestDeliveryCarriesTheMessageAndItsIDs: an attempt sends the stored
// method, path (under the target's), query, headers and body, with the
// delivery id and attempt number set by the gate (a sender's spelling of
// them removed); a 2xx removes the message.
func TestDeliveryCarriesTheMessageAndItsIDs(t *testing.T) {
	rc := newReceiver(t)
	c := &clock{t: t0}
	q, s := newQueue(t, rc, c, RouteOptions{})
	m := enqueue(t, q, `{"a":1}`)
	if n := deliverDue(t, q); n != 1 {
		t.Fatalf("attempted %d", n)
	}
	h := rc.got()
	if len(h) != 1 {
		t.Fatalf("receiver got %d requests", len(h))
	}
	g := h[0]
	if g.method != "POST" || g.path != "/base/hooks/gh" || g.query != "x=1" || g.body != `{"a":1}` || g.header.Get("Content-Type") != "application/json" ||
		g.host != rc.Listener.Addr().String() {
		t.Fatalf("receiver got %+v", g)
	}
	if g.header.Get(HeaderDeliveryID) != m.ID || g.header.Get(HeaderAttempt) != "1" || len(g.header.Values(HeaderAttempt)) != 1 {
		t.Fatalf("delivery headers %v, want id %s attempt 1", g.header, m.ID)
	}
	if _, ok := g.header["X_tokengate_delivery_id"]; ok {
		t.Fatal("a sender's spelling of the delivery id header reached the receiver")
	}
	if _, err := s.Get(context.Background(), m.ID); err == nil {
		t.Fatal("a delivered message is still stored")
	}
}

// TestBackoffAndRetryAfter: a 500 is tried again after the backoff (not
// before), with the same delivery id and the next attempt number; a 503's
// Retry-After wins over the backoff.
func TestBackoffAndRetryAfter(t *testing.T) {
	rc := newReceiver(t)
	c := &clock{t: t0}
	q, _ := newQueue(t, rc, c, RouteOptions{BackoffInitial: 10 * time.Second, BackoffMax: time.Minute})
	m := enqueue(t, q, "x")
	rc.answerWith(500, nil, "boom")
	deliverDue(t, q) // attempt 1, then ~10s
	c.add(9 * time.Second)
	if n := deliverDue(t, q); n != 0 {
		t.Fatal("tried again before the backoff ended")
	}
	c.add(time.Second)
	deliverDue(t, q) // attempt 2, then ~20s
	c.add(19 * time.Second)
	if n := deliverDue(t, q); n != 0 {
		t.Fatal("tried again before the doubled backoff ended")
	}
	c.add(time.Second)
	rc.answerWith(503, http.Header{"Retry-After": {"300"}}, "later")
	deliverDue(t, q) // attempt 3, then Retry-After 300s (more than backoff max)
	c.add(299 * time.Second)
	if n := deliverDue(t, q); n != 0 {
		t.Fatal("tried again before the receiver's Retry-After")
	}
	c.add(time.Second)
	rc.answerWith(204, nil, "")
	deliverDue(t, q)
	h := rc.got()
	if len(h) != 4 {
		t.Fatalf("receiver got %d attempts, want 4", len(h))
	}
	for i, g := range h {
		if g.header.Get(HeaderDeliveryID) != m.ID || g.header.Get(HeaderAttempt) != strconv.Itoa(i+1) {
			t.Fatalf("attempt %d carried id %q attempt %q", i+1, g.header.Get(HeaderDeliveryID), g.header.Get(HeaderAttempt))
		}
	}
}

// deadCase is one way a message becomes a dead letter, or does not.
type deadCase struct {
	name     string
	ro       RouteOptions
	status   int
	tries    int // DeliverDue passes, the clock moved an hour before each
	dead     bool
	reason   string
	attempts int
}

func (dc deadCase) run(t *testing.T) {
	rc := newReceiver(t)
	c := &clock{t: t0}
	dc.ro.BackoffInitial, dc.ro.BackoffMax = time.Second, time.Second
	q, s := newQueue(t, rc, c, dc.ro)
	m := enqueue(t, q, "x")
	rc.answerWith(dc.status, nil, "receiver says no\x00\xff")
	for range dc.tries {
		deliverDue(t, q)
		c.add(time.Hour)
	}
	got, err := s.Get(context.Background(), m.ID)
	must(t, err)
	if (got.State == Dead) != dc.dead || got.Reason != dc.reason || got.Attempts != dc.attempts {
		t.Fatalf("state %s reason %q attempts %d; want dead=%v reason %q attempts %d", got.State, got.Reason, got.Attempts, dc.dead, dc.reason, dc.attempts)
	}
	want := "receiver says no.." // control and invalid bytes shown as dots
	if dc.status == http.StatusNoContent {
		want = "" // a 204 has no body
	}
	if got.Last == nil || got.Last.Status != dc.status || got.Last.Body != want {
		t.Fatalf("last answer %+v", got.Last)
	}
}

// TestDeadLetters: a 4xx other than 408/409/425/429 is a dead letter at
// once unless configured; max_attempts and max_age end the rest; the
// last answer is kept.
func TestDeadLetters(t *testing.T) {
	for _, dc := range []deadCase{
		{name: "404 is refused at once", status: 404, tries: 3, dead: true, reason: "refused", attempts: 1},
		{name: "404 retried when configured", ro: RouteOptions{RetryOn: Codes{"404"}}, status: 404, tries: 3, attempts: 3},
		{name: "4xx class retried when configured", ro: RouteOptions{RetryOn: Codes{"4xx"}}, status: 410, tries: 2, attempts: 2},
		{name: "429 is retried", status: 429, tries: 3, attempts: 3},
		{name: "409 is retried", status: 409, tries: 2, attempts: 2},
		{name: "500 until max_attempts", ro: RouteOptions{MaxAttempts: 3}, status: 500, tries: 5, dead: true, reason: "max_attempts", attempts: 3},
		{name: "500 until max_age", ro: RouteOptions{MaxAge: 150 * time.Minute}, status: 500, tries: 5, dead: true, reason: "max_age", attempts: 3},
		{name: "success set: 200 only, 204 is not taken", ro: RouteOptions{Success: Codes{"200"}}, status: 204, tries: 2, attempts: 2},
	} {
		t.Run(dc.name, dc.run)
	}
}

// TestConcurrencyBound: Run never has more than a route's concurrency in
// flight, and delivers everything.
func TestConcurrencyBound(t *testing.T) {
	rc := newReceiver(t)
	var mu sync.Mutex
	inflight, most := 0, 0
	release := make(chan struct{})
	rc.answer = func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inflight++
		most = max(most, inflight)
		mu.Unlock()
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		mu.Lock()
		inflight--
		mu.Unlock()
	}
	c := &clock{t: t0}
	q, s := newQueue(t, rc, c, RouteOptions{Concurrency: 2})
	for range 6 {
		enqueue(t, q, "x")
	}
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- q.Run(ctx) }()
	waitFor(t, "all six delivered", func() bool {
		select {
		case release <- struct{}{}:
		case <-time.After(10 * time.Millisecond):
		}
		st, _ := s.Stats(context.Background())
		return len(st) == 0
	})
	stop()
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if most > 2 {
		t.Fatalf("%d attempts in flight at once, concurrency is 2", most)
	}
}

// TestShutdownLeavesTheRestStored: an attempt still running when the
// grace ends is cut short, not counted, and its message stays stored,
// due at once; messages not yet attempted stay too.
func TestShutdownLeavesTheRestStored(t *testing.T) {
	rc := newReceiver(t)
	started := make(chan struct{}, 10)
	rc.answer = func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-r.Context().Done() // never answers
	}
	c := &clock{t: t0}
	s, err := OpenFile(FileOptions{Dir: t.TempDir()})
	must(t, err)
	defer s.Close()
	target, _ := url.Parse(rc.URL)
	q, err := New(s, Options{Routes: []RouteOptions{{Name: "gh", Concurrency: 1}}, Target: target, Now: c.now, Grace: 100 * time.Millisecond})
	must(t, err)
	a, b := enqueue(t, q, "a"), enqueue(t, q, "b")
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- q.Run(ctx) }()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("no attempt started within 10s")
	}
	stop()
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of its context ending (grace 100ms)")
	}
	for _, m := range []*Message{a, b} {
		got, err := s.Get(context.Background(), m.ID)
		if err != nil || got.State != Pending || got.Attempts != 0 || got.Next.After(c.now()) {
			t.Fatalf("after shutdown %s: %+v, %v; want pending, 0 attempts, due", m.ID, got, err)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 20s waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// recordingObserver keeps what the queue reported.
type recordingObserver struct {
	mu       sync.Mutex
	stored   map[string]RouteStats
	outcomes map[string]int
}

func (o *recordingObserver) ObserveStored(s RouteStats, oldest time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stored[s.Route] = s
}

func (o *recordingObserver) ObserveAttempt(route, outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.outcomes[route+" "+outcome]++
}

// TestObserverHearsDepthAndOutcomes: Run reports each route's stored
// messages (dead letters included) and counts attempts by outcome.
func TestObserverHearsDepthAndOutcomes(t *testing.T) {
	rc := newReceiver(t)
	rc.answerWith(http.StatusGone, nil, "gone")
	s, err := OpenFile(FileOptions{Dir: t.TempDir()})
	must(t, err)
	defer s.Close()
	obs := &recordingObserver{stored: map[string]RouteStats{}, outcomes: map[string]int{}}
	q, err := New(s, Options{Routes: []RouteOptions{{Name: "gh"}}, Target: mustURL(rc.URL), Observer: obs, StatsEvery: 10 * time.Millisecond})
	must(t, err)
	enqueue(t, q, "x")
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- q.Run(ctx) }()
	waitFor(t, "a dead letter reported", func() bool {
		obs.mu.Lock()
		defer obs.mu.Unlock()
		return obs.stored["gh"].Dead == 1 && obs.outcomes["gh dead"] == 1
	})
	stop()
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
}
