package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tokengate/tokengate/queue"
	"github.com/tokengate/tokengate/signature"
)

// queuedRoutesYAML follow baseRoutes' six: a signed GitHub route and a bearer
// route, both queued, and a direct twin of the bearer route.
const queuedRoutesYAML = `  - name: gh-queued
    path: /hooks/gh-queued
    signature: { scheme: github, secrets: ["${TG_TEST_GH}"] }
    delivery: { mode: queued }
  - name: bearer-queued
    path_prefix: /hooks/queued
    require: { issuers: [idp] }
    delivery: { mode: queued, ack_status: 200 }
  - name: bearer-direct
    path_prefix: /hooks/direct
    require: { issuers: [idp] }
`

// fakeClock is the queue's injected clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// queuedEnv is a gate with queued routes whose queue delivers to target.
type queuedEnv struct {
	*env
	q     *queue.Queue
	store *queue.FileStore
	clock *fakeClock
}

func newQueuedEnv(t *testing.T, target string, maxBytes int64) *queuedEnv {
	return newQueuedEnvYAML(t, target, maxBytes, "")
}

// newQueuedEnvYAML is newQueuedEnv with more top-level YAML.
func newQueuedEnvYAML(t *testing.T, target string, maxBytes int64, extra string) *queuedEnv {
	t.Helper()
	t.Setenv("TG_TEST_GH", ghSecret)
	store, err := queue.OpenFile(queue.FileOptions{Dir: t.TempDir(), MaxBytes: maxBytes})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	u, _ := url.Parse(target)
	c := &fakeClock{t: time.Now()}
	q, err := queue.New(store, queue.Options{Routes: []queue.RouteOptions{{Name: "gh-queued"}, {Name: "bearer-queued"}}, Target: u, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	sig, err := signature.New(signature.Options{Scheme: signature.GitHub, Route: "gh-queued", Secrets: []string{ghSecret},
		Store: signature.NewMemoryStore(signature.MemoryOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvOpts(t, queuedRoutesYAML+extra, Options{Queue: q, Signatures: []SignatureVerifier{nil, nil, nil, nil, nil, nil, sig}})
	return &queuedEnv{env: e, q: q, store: store, clock: c}
}

func (qe *queuedEnv) deliverDue() int {
	qe.t.Helper()
	n, err := qe.q.DeliverDue(context.Background())
	if err != nil {
		qe.t.Fatal(err)
	}
	return n
}

func (qe *queuedEnv) stored() []queue.RouteStats {
	st, err := qe.store.Stats(context.Background())
	if err != nil {
		qe.t.Fatal(err)
	}
	return st
}

// queuedAnswer is the JSON a sender gets for a stored message.
type queuedAnswer struct {
	Result     string `json:"result"`
	DeliveryID string `json:"delivery_id"`
}

func ackOf(t *testing.T, resp *http.Response, status int) queuedAnswer {
	t.Helper()
	var a queuedAnswer
	if resp.StatusCode != status || json.Unmarshal([]byte(bodyOf(resp)), &a) != nil || a.Result != "queued" || a.DeliveryID == "" {
		t.Fatalf("status %d %s, want %d and a queued answer", resp.StatusCode, bodyOf(resp), status)
	}
	return a
}

// TestQueuedReceiverDownSenderGets202ThenDelivered: with the receiver
// down, a signed webhook on a queued route is acknowledged 202 with its
// delivery id (GitHub's own); attempts fail while the receiver is down;
// once it is up, the next attempt delivers the message as the proxy would
// have forwarded it (hygienic headers, the signature kept for the
// receiver) with the delivery id and attempt number. A copy of the stored
// message is a duplicate, not stored twice.
func TestQueuedReceiverDownSenderGets202ThenDelivered(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // the receiver is down
	qe := newQueuedEnv(t, "http://"+addr, 0)

	const body, ghDelivery = `{"action":"opened"}`, "72d3162e-cc78-11e3-81ab-4c9367dc0958"
	send := func() *http.Response {
		return qe.do(http.MethodPost, "/hooks/gh-queued?x=1", body, "X-Hub-Signature-256", githubSignature(body), "X-GitHub-Delivery", ghDelivery,
			"X-Auth-Subject", "spoofed", "X-Forwarded-For", "203.0.113.9", "Connection", "X-Drop", "X-Drop", "1", "X-Tokengate-Attempt", "7")
	}
	a := ackOf(t, send(), http.StatusAccepted)
	if a.DeliveryID == "" || a.DeliveryID == ghDelivery {
		t.Fatalf("delivery id %q, want one named by the signed message, not the unsigned X-GitHub-Delivery", a.DeliveryID)
	}
	delivery := a.DeliveryID
	if resp := send(); resp.StatusCode != http.StatusOK || !strings.Contains(bodyOf(resp), "duplicate") {
		t.Fatalf("a copy of a stored message: %d %s, want 200 duplicate", resp.StatusCode, bodyOf(resp))
	}
	if n := qe.deliverDue(); n != 1 {
		t.Fatalf("attempted %d, want 1", n)
	}
	if st := qe.stored(); len(st) != 1 || st[0].Pending != 1 {
		t.Fatalf("after a failed attempt: %+v, want the message still pending", st)
	}

	var mu sync.Mutex
	var got []*http.Request
	var gotBody []string
	rl, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the receiver's port was taken meanwhile: %v", err)
	}
	rcv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 1024)
		n, _ := r.Body.Read(b)
		mu.Lock()
		got, gotBody = append(got, r), append(gotBody, string(b[:n]))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	rcv.Listener = rl
	rcv.Start()
	defer rcv.Close()

	qe.clock.add(time.Minute) // past the backoff
	if n := qe.deliverDue(); n != 1 {
		t.Fatalf("attempted %d once the receiver is up, want 1", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("the receiver got %d requests", len(got))
	}
	r := got[0]
	checks := map[string][2]string{
		"path":               {r.URL.Path, "/hooks/gh-queued"},
		"query":              {r.URL.RawQuery, "x=1"},
		"body":               {gotBody[0], body},
		"delivery id":        {r.Header.Get(queue.HeaderDeliveryID), delivery},
		"attempt":            {r.Header.Get(queue.HeaderAttempt), "2"},
		"signature kept":     {r.Header.Get("X-Hub-Signature-256"), githubSignature(body)},
		"spoofed identity":   {r.Header.Get("X-Auth-Subject"), ""},
		"forwarded-for":      {r.Header.Get("X-Forwarded-For"), "127.0.0.1"},
		"connection-named":   {r.Header.Get("X-Drop"), ""},
		"forwarded-proto":    {r.Header.Get("X-Forwarded-Proto"), "http"},
		"sender's X-GitHub-": {r.Header.Get("X-Github-Delivery"), ghDelivery},
	}
	for what, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s: the receiver got %q, want %q", what, c[0], c[1])
		}
	}
	if st := qe.stored(); len(st) != 0 {
		t.Fatalf("after delivery: %+v, want nothing stored", st)
	}
}

// TestQueuedHeadersAreTheForwardedOnes: the same bearer request sent to a
// direct route and to its queued twin reaches the receiver with the same
// headers (the gate's delivery headers aside): the queue stores what the
// forwarding policy makes, here from a trusted proxy (whose X-Forwarded-*
// are kept and whose Forwarded is dropped, as ReverseProxy does).
func TestQueuedHeadersAreTheForwardedOnes(t *testing.T) {
	qe := newQueuedEnvYAML(t, "", 0, "trusted_proxies: [127.0.0.1]\n")
	qe.q = mustQueue(t, qe.store, qe.up.URL) // delivers what the handler's queue stored, to the env's receiver
	tok := qe.token()
	h := []string{"Authorization", "Bearer " + tok, "X-Auth-Subject", "spoofed", "X-Original-URL", "/admin", "X_Custom_Stripped", "1",
		"Content-Type", "application/json", "X-Forwarded-For", "203.0.113.9", "Connection", "X-Drop", "X-Drop", "1", "X-Keep", "yes",
		"Forwarded", "for=198.51.100.1", "X-Real-Ip", "198.51.100.2"}
	if resp := qe.do(http.MethodPost, "/hooks/direct/a?b=c", "{}", h...); resp.StatusCode != http.StatusOK {
		t.Fatalf("direct: %d", resp.StatusCode)
	}
	a := ackOf(t, qe.do(http.MethodPost, "/hooks/queued/a?b=c", "{}", h...), http.StatusOK)
	if n := qe.deliverDue(); n != 1 {
		t.Fatalf("attempted %d", n)
	}
	reqs := qe.up.requests()
	if len(reqs) != 2 {
		t.Fatalf("receiver got %d requests", len(reqs))
	}
	direct, queued := reqs[0].Header.Clone(), reqs[1].Header.Clone()
	if queued.Get(queue.HeaderDeliveryID) != a.DeliveryID || queued.Get(queue.HeaderAttempt) != "1" {
		t.Fatalf("delivery headers %v, want id %s", queued, a.DeliveryID)
	}
	queued.Del(queue.HeaderDeliveryID)
	queued.Del(queue.HeaderAttempt)
	if !equalHeaders(direct, queued) {
		t.Fatalf("headers differ\ndirect: %v\nqueued: %v", direct, queued)
	}
	if direct.Get("X-Auth-Subject") == "spoofed" || direct.Get("X-Auth-Subject") == "" || direct.Get("Authorization") != "" || direct.Get("X-Keep") != "yes" ||
		direct.Get("Forwarded") != "" || direct.Get("X-Forwarded-For") != "203.0.113.9, 127.0.0.1" || direct.Get("X-Real-Ip") != "198.51.100.2" {
		t.Fatalf("header hygiene: %v", direct)
	}
	if reqs[1].Path != "/hooks/queued/a" || reqs[1].RawQuery != "b=c" || reqs[1].Body != "{}" {
		t.Fatalf("queued request %+v", reqs[1])
	}
}

func mustQueue(t *testing.T, s queue.Store, target string) *queue.Queue {
	t.Helper()
	u, _ := url.Parse(target)
	q, err := queue.New(s, queue.Options{Routes: []queue.RouteOptions{{Name: "gh-queued"}, {Name: "bearer-queued"}}, Target: u})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func equalHeaders(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if strings.Join(v, "\x00") != strings.Join(b[k], "\x00") {
			return false
		}
	}
	return true
}

// TestQueuedRefusedRequestsAreNeverStored: a bad signature, a bad or
// missing token, a body too large: refused as on a direct route, and
// nothing is stored.
func TestQueuedRefusedRequestsAreNeverStored(t *testing.T) {
	qe := newQueuedEnv(t, "http://127.0.0.1:1", 0)
	for _, c := range []struct {
		name, path, body string
		h                []string
		status           int
	}{
		{"bad signature", "/hooks/gh-queued", "{}", []string{"X-Hub-Signature-256", githubSignature("other")}, http.StatusUnauthorized},
		{"no signature", "/hooks/gh-queued", "{}", nil, http.StatusUnauthorized},
		{"no token", "/hooks/queued/a", "{}", nil, http.StatusUnauthorized},
		{"bad token", "/hooks/queued/a", "{}", []string{"Authorization", "Bearer nope"}, http.StatusUnauthorized},
		{"body too large", "/hooks/queued/a", strings.Repeat("x", 2048), []string{"Authorization", "Bearer " + qe.token()}, http.StatusRequestEntityTooLarge},
	} {
		if resp := qe.do(http.MethodPost, c.path, c.body, c.h...); resp.StatusCode != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, resp.StatusCode, bodyOf(resp), c.status)
		}
	}
	if st := qe.stored(); len(st) != 0 {
		t.Fatalf("refused requests were stored: %+v", st)
	}
}

// TestQueueFullIs503NotADrop: past max_bytes the sender gets 503 with
// Retry-After, nothing is acknowledged, and the signed message's claim is
// released: once there is room, the sender's retry is stored (not
// answered as a duplicate or in flight).
func TestQueueFullIs503NotADrop(t *testing.T) {
	qe := newQueuedEnv(t, "", 1500) // the small message (377 bytes stored) and the big one (1283) do not fit together
	qe.q = mustQueue(t, qe.store, qe.up.URL)
	small := `{"n":1}`
	ackOf(t, qe.do(http.MethodPost, "/hooks/gh-queued", small, "X-Hub-Signature-256", githubSignature(small)), http.StatusAccepted)
	big := `{"pad":"` + strings.Repeat("x", 900) + `"}`
	resp := qe.do(http.MethodPost, "/hooks/gh-queued", big, "X-Hub-Signature-256", githubSignature(big))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "7" || strings.Contains(bodyOf(resp), "queued") {
		t.Fatalf("queue full: %d Retry-After %q %s, want 503 with Retry-After 7", resp.StatusCode, resp.Header.Get("Retry-After"), bodyOf(resp))
	}
	if n := qe.deliverDue(); n != 1 {
		t.Fatalf("attempted %d", n)
	}
	ackOf(t, qe.do(http.MethodPost, "/hooks/gh-queued", big, "X-Hub-Signature-256", githubSignature(big)), http.StatusAccepted)
}

// TestQueuedDeliveryIDIsTheSignedMessages: GitHub's X-GitHub-Delivery is
// not signed, so two different signed bodies sent under one of them are
// two messages with two delivery ids (a receiver that de-duplicates on
// the id would otherwise drop the second), and the header cannot name a
// message: the id follows what the signature covers.
func TestQueuedDeliveryIDIsTheSignedMessages(t *testing.T) {
	qe := newQueuedEnv(t, "", 0)
	qe.q = mustQueue(t, qe.store, qe.up.URL)
	ids := map[string]bool{}
	for _, body := range []string{`{"n":1}`, `{"n":2}`} {
		a := ackOf(t, qe.do(http.MethodPost, "/hooks/gh-queued", body, "X-Hub-Signature-256", githubSignature(body), "X-GitHub-Delivery", "same-id-1"), http.StatusAccepted)
		if a.DeliveryID == "same-id-1" {
			t.Fatalf("the unsigned X-GitHub-Delivery named a stored message")
		}
		ids[a.DeliveryID] = true
	}
	if len(ids) != 2 {
		t.Fatalf("two different signed messages under one X-GitHub-Delivery got delivery ids %v, want two", ids)
	}
}

// TestQueuedQueryIsTheForwardedOne: the same request sent to a direct
// route and to its queued twin reaches the receiver with the same query:
// parameters ReverseProxy drops (after a semicolon, a malformed escape)
// are not stored and delivered by the queue either (an outside attack
// had "a=1;access_token=…" delivered on a queued route; such a token is
// now refused before, TestFoldedAccessTokenQueryNamesAreRefused).
func TestQueuedQueryIsTheForwardedOne(t *testing.T) {
	for _, query := range []string{"b=c", "a=1;b=SECRET", ";b=X", "x;B=X", "a=%zz&b=1", "a=%4&b=2", "z=1&a=2&a=1", "q=%C3%BC+x"} {
		t.Run(query, func(t *testing.T) {
			qe := newQueuedEnvYAML(t, "", 0, "")
			qe.q = mustQueue(t, qe.store, qe.up.URL)
			h := []string{"Authorization", "Bearer " + qe.token(), "Content-Type", "application/json"}
			if resp := qe.do(http.MethodPost, "/hooks/direct/a?"+query, "{}", h...); resp.StatusCode != http.StatusOK {
				t.Fatalf("direct: %d", resp.StatusCode)
			}
			ackOf(t, qe.do(http.MethodPost, "/hooks/queued/a?"+query, "{}", h...), http.StatusOK)
			if n := qe.deliverDue(); n != 1 {
				t.Fatalf("attempted %d", n)
			}
			reqs := qe.up.requests()
			if len(reqs) != 2 {
				t.Fatalf("receiver got %d requests", len(reqs))
			}
			if reqs[0].RawQuery != reqs[1].RawQuery {
				t.Fatalf("direct forwarded %q, queued delivered %q", reqs[0].RawQuery, reqs[1].RawQuery)
			}
			if strings.Contains(strings.ToLower(reqs[1].RawQuery), "access_token") {
				t.Fatalf("a token in the query reached the receiver: %q", reqs[1].RawQuery)
			}
		})
	}
}

// TestHalfClosedShortBodyIsNeverAcknowledged: a sender that sends less
// body than its Content-Length and half-closes its side still reads the
// answer: it gets 400, not the 200 net/http sends when a handler writes
// nothing (an outside attack read "HTTP/1.1 200 OK" here), on a direct
// route, a queued one and a signed queued one; nothing is stored or
// delivered.
func TestHalfClosedShortBodyIsNeverAcknowledged(t *testing.T) {
	qe := newQueuedEnvYAML(t, "", 0, "")
	tok := qe.token()
	for _, tc := range []struct{ name, path, auth string }{
		{"queued", "/hooks/queued/a", "Authorization: Bearer " + tok},
		{"signed queued", "/hooks/gh-queued", "X-Hub-Signature-256: sha256=" + strings.Repeat("0", 64)},
		{"direct", "/hooks/direct/a", "Authorization: Bearer " + tok}, // streamed: the receiver sees a cut request, as behind any proxy
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, rd := rawRequest(t, qe.env, "POST "+tc.path+" HTTP/1.1\r\nHost: x\r\n"+tc.auth+"\r\nContent-Type: application/json\r\nContent-Length: 900\r\n\r\n"+strings.Repeat("a", 400))
			_ = conn.(*net.TCPConn).CloseWrite() // fails if the gate answered and closed already: its answer is read below
			_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			resp, err := http.ReadResponse(rd, nil)
			if err != nil {
				t.Fatalf("no answer read: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode < 400 {
				t.Fatalf("a body cut short was answered %d; want a 4xx", resp.StatusCode)
			}
			if n := len(qe.up.requests()); tc.name != "direct" && n != 0 {
				t.Fatalf("the receiver got %d requests", n)
			}
		})
	}
	if st := qe.stored(); len(st) != 0 {
		t.Fatalf("stored %+v", st)
	}
}

// TestAckBodyIsWhatJSONWrites: the acknowledgement written without
// reflection is byte for byte encoding/json's, for generated and sender
// ids and for an id with every byte (the slow path).
func TestAckBodyIsWhatJSONWrites(t *testing.T) {
	ids := []string{"", "019a2b3c4d5e6f708192a3b4c5d6e7f8", "msg_2Kx.9:a-b", `a"b`, `a\b`, "<x>&", "é", "\x00\x1f\x7f"}
	for c := range 256 {
		ids = append(ids, "id"+string([]byte{byte(c)}))
	}
	for _, id := range ids {
		want, _ := json.Marshal(struct {
			Result     string `json:"result"`
			DeliveryID string `json:"delivery_id"`
		}{"queued", id})
		if got := string(ackBody(id)); got != string(want)+"\n" {
			t.Errorf("ackBody(%q) = %q, want %q", id, got, string(want)+"\n")
		}
	}
}

// waitingEnqueuer stands for a store whose disk does not answer: Enqueue
// returns only when its context ends, and says so.
type waitingEnqueuer struct {
	ended   chan error
	release chan struct{} // the test's end: no request is left held
}

func (w waitingEnqueuer) Enqueue(ctx context.Context, _ *queue.Message) error {
	select {
	case <-ctx.Done():
	case <-w.release:
		return queue.ErrUnavailable
	}
	w.ended <- ctx.Err()
	return ctx.Err()
}

// TestQueuedSenderThatGoesAwayIsLetGo: the store gets the request's own
// context, so a sender that goes away while the store is busy frees its
// request (the store decides what is already taken: queue.Store.Add).
func TestQueuedSenderThatGoesAwayIsLetGo(t *testing.T) {
	t.Setenv("TG_TEST_GH", ghSecret)
	w := waitingEnqueuer{ended: make(chan error, 1), release: make(chan struct{})}
	sig, err := signature.New(signature.Options{Scheme: signature.GitHub, Route: "gh-queued", Secrets: []string{ghSecret}})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvOpts(t, queuedRoutesYAML, Options{Queue: w, Signatures: []SignatureVerifier{nil, nil, nil, nil, nil, nil, sig}})
	t.Cleanup(func() { close(w.release) }) // before the env's: its server waits for its requests
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.front.URL+"/hooks/queued/x", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+e.token("webhooks:write"))
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		if resp, err := e.front.Client().Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(50 * time.Millisecond) // the request reaches the store (not required for what is checked)
	cancel()
	<-sent
	select {
	case err := <-w.ended:
		if err == nil {
			t.Fatal("the store's wait ended without an error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the store still holds a sender that went away 10 s ago")
	}
}

// TestQueuedSenderThatHalfClosesIsStored: a sender that half-closes its
// connection after the whole request still reads its answer, though Go's
// server then ends the request's context: on a queued route its message
// is stored and acknowledged, not refused as a sender that went away (an
// outside attack: 193 of 200 such GitHub deliveries got 503). The senders
// come at once, so that most find the store's commit busy.
func TestQueuedSenderThatHalfClosesIsStored(t *testing.T) {
	qe := newQueuedEnv(t, "http://127.0.0.1:1", 0)
	const n = 50
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- halfClosedDelivery(qe.front.URL, fmt.Sprintf(`{"n":%d}`, i)) }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if st := qe.stored(); len(st) != 1 || st[0].Pending != n {
		t.Fatalf("stored %+v, want %d pending messages", st, n)
	}
}

// halfClosedDelivery sends a signed GitHub delivery of body, half-closes
// the connection and reads the answer, which must be 202.
func halfClosedDelivery(front, body string) error {
	conn, err := net.Dial("tcp", strings.TrimPrefix(front, "http://"))
	if err != nil {
		return err
	}
	defer conn.Close()
	req := fmt.Sprintf("POST /hooks/gh-queued HTTP/1.1\r\nHost: gate\r\nContent-Type: application/json\r\nX-Hub-Signature-256: %s\r\nContent-Length: %d\r\n\r\n%s",
		githubSignature(body), len(body), body)
	if _, err := io.WriteString(conn, req); err != nil {
		return err
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return fmt.Errorf("%s: no answer after the half-close: %w", body, err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("%s: status %d %s, want 202", body, resp.StatusCode, b)
	}
	return nil
}

// failingEnqueuer stands for a store that cannot be written.
type failingEnqueuer struct{}

func (failingEnqueuer) Enqueue(context.Context, *queue.Message) error { return queue.ErrUnavailable }

// TestStoreFailureWarningIsThrottled: while the store cannot be written,
// every sender gets 503, but the warning is written at most once a
// second (with how many were not), not once per request: under load that
// was a line, and a flush, per message.
func TestStoreFailureWarningIsThrottled(t *testing.T) {
	t.Setenv("TG_TEST_GH", ghSecret)
	core, logs := observer.New(zapcore.WarnLevel)
	sig, err := signature.New(signature.Options{Scheme: signature.GitHub, Route: "gh-queued", Secrets: []string{ghSecret}})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvOpts(t, queuedRoutesYAML, Options{Queue: failingEnqueuer{}, Logger: zap.New(core), Signatures: []SignatureVerifier{nil, nil, nil, nil, nil, nil, sig}})
	tok := e.token("webhooks:write")
	const n = 20
	start := time.Now()
	for range n {
		if resp := e.do(http.MethodPost, "/hooks/queued/x", "{}", "Authorization", "Bearer "+tok); resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503", resp.StatusCode)
		}
	}
	most := 1 + int(time.Since(start)/storeWarnEvery)
	warned := logs.FilterMessageSnippet("could not be stored").All()
	if len(warned) == 0 || len(warned) > most || len(warned) >= n {
		t.Fatalf("%d warnings for %d refused messages in %v, want 1 to %d", len(warned), n, time.Since(start), most)
	}
}
