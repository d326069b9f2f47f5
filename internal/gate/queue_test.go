package gate

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/queue"
)

// queueReceiver is the receiver of queued messages, started on addr only
// when the test says (before that, nothing listens there: it is down).
type queueReceiver struct {
	addr string
	srv  *http.Server
	mu   sync.Mutex
	got  []http.Header
	body []string
}

func (r *queueReceiver) up(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	r.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, req.Header.Clone())
		r.body = append(r.body, string(b))
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = r.srv.Serve(ln) }()
	t.Cleanup(func() { _ = r.srv.Close() })
}

func (r *queueReceiver) received() ([]http.Header, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]http.Header(nil), r.got...), append([]string(nil), r.body...)
}

// queuedConfig writes a config with one queued GitHub route whose
// receiver is recv and whose store is dir; it returns its path.
func queuedConfig(t *testing.T, recv, dir string) string {
	t.Helper()
	t.Setenv("GH_QUEUED", "queued-github-secret")
	return write(t, t.TempDir(), "tokengate.yaml", fmt.Sprintf(`
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
shutdown_grace: 2s
upstream: http://%s
queue: { store: "file://%s" }
routes:
  - name: gh
    path: /hooks/gh
    signature: { scheme: github, secrets: ["${GH_QUEUED}"] }
    delivery: { mode: queued, backoff: { initial: 50ms, max: 200ms } }
`, recv, dir))
}

// startQueued starts a gate on the config at path, stopped with the test.
func startQueued(t *testing.T, path string) *Gate {
	t.Helper()
	g, err := startWith(t.Context(), path, Options{QueueCheckEvery: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Shutdown(context.Background()) })
	return g
}

// sendQueued posts a signed GitHub message and returns the answer.
func sendQueued(t *testing.T, g *Gate, delivery, body string) answer {
	t.Helper()
	return post(t, "http://"+g.Addr()+"/hooks/gh", githubHeaders("queued-github-secret", delivery, body), body)
}

// stored counts the gate's pending and dead messages.
func stored(t *testing.T, g *Gate) (pending, dead int64) {
	t.Helper()
	st, err := g.queue.Load().q.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		pending, dead = pending+s.Pending, dead+s.Dead
	}
	return pending, dead
}

// TestQueuedMessageWaitsForTheReceiver: with the receiver down, a sender
// gets 202 and /readyz stays ready; once the receiver is up the message
// reaches it exactly once, with the delivery id the 202 named as
// X-Tokengate-Delivery-Id (not the unsigned X-GitHub-Delivery), and the
// metrics count it.
func TestQueuedMessageWaitsForTheReceiver(t *testing.T) {
	recv := &queueReceiver{addr: freeAddr(t)}
	g := startQueued(t, queuedConfig(t, recv.addr, filepath.Join(t.TempDir(), "queue")))
	const body, delivery = `{"action":"opened"}`, "72d3162e-cc78-11e3-81ab-4c9367dc0958"
	a := sendQueued(t, g, delivery, body)
	if a.status != http.StatusAccepted || a.DeliveryID == "" || a.DeliveryID == delivery {
		t.Fatalf("receiver down: %d %+v, want 202 with a delivery id of the signed message", a.status, a)
	}
	eventually(t, "a failed attempt", func() bool {
		return strings.Contains(get(t, "http://"+g.AdminAddr()+"/metrics"), `tokengate_queue_attempts_total{outcome="retry",route="gh"}`)
	})
	if code, b := readyz(t, g); code != http.StatusOK {
		t.Fatalf("/readyz with the receiver down: %d %s, want 200 (storing is the point)", code, b)
	}
	recv.up(t)
	eventually(t, "the stored message delivered", func() bool { p, d := stored(t, g); return p == 0 && d == 0 })
	hs, bodies := recv.received()
	if len(hs) != 1 || bodies[0] != body {
		t.Fatalf("receiver got %d messages %q, want the one once", len(hs), bodies)
	}
	if id := hs[0].Get(queue.HeaderDeliveryID); id != a.DeliveryID {
		t.Fatalf("%s = %q, want the acknowledged %q", queue.HeaderDeliveryID, id, a.DeliveryID)
	}
	m := get(t, "http://"+g.AdminAddr()+"/metrics")
	for _, want := range []string{`tokengate_queue_attempts_total{outcome="delivered",route="gh"} 1`, `tokengate_queue_messages{route="gh",state="pending"}`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics has no %s:\n%s", want, grep(m, "tokengate_queue"))
		}
	}
}

// TestQueuedMessagesSurviveShutdown: messages stored while the receiver
// is down outlive the gate's Shutdown; a new gate on the same store
// (whose lock the first released) delivers every one of them.
func TestQueuedMessagesSurviveShutdown(t *testing.T) {
	recv := &queueReceiver{addr: freeAddr(t)}
	path := queuedConfig(t, recv.addr, filepath.Join(t.TempDir(), "queue"))
	g, err := startWith(t.Context(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	for i := range 3 {
		a := sendQueued(t, g, fmt.Sprintf("d-%d", i), fmt.Sprintf(`{"n":%d}`, i))
		if a.status != http.StatusAccepted {
			t.Fatalf("message %d: %d, want 202", i, a.status)
		}
		acked[a.DeliveryID] = true
	}
	done := make(chan error, 1)
	go func() { done <- g.Shutdown(context.Background()) }()
	if err := waitFor(t, done, "Shutdown"); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	recv.up(t)
	g2 := startQueued(t, path)
	eventually(t, "the stored messages delivered by the new gate", func() bool { p, _ := stored(t, g2); return p == 0 })
	hs, bodies := recv.received()
	ids := map[string]bool{}
	for _, h := range hs {
		ids[h.Get(queue.HeaderDeliveryID)] = true
	}
	if len(hs) != 3 || len(ids) != 3 || !maps.Equal(ids, acked) {
		t.Fatalf("after the restart the receiver got %q (ids %v), want the three once each", bodies, ids)
	}
}

// TestQueueStoreHealthDecidesReadiness: a store that cannot be written
// (its directory removed: what is written would be lost with the process)
// makes /readyz 503 and a queued route refuse with 503 instead of
// acknowledging; a receiver that is down does not.
func TestQueueStoreHealthDecidesReadiness(t *testing.T) {
	recv := &queueReceiver{addr: freeAddr(t)}
	dir := filepath.Join(t.TempDir(), "queue")
	g := startQueued(t, queuedConfig(t, recv.addr, dir))
	if a := sendQueued(t, g, "d-1", `{}`); a.status != http.StatusAccepted {
		t.Fatalf("healthy store: %d, want 202", a.status)
	}
	if code, b := readyz(t, g); code != http.StatusOK {
		t.Fatalf("/readyz, receiver down, store fine: %d %s", code, b)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	eventually(t, "/readyz 503 after the store's directory went away", func() bool {
		code, b := readyz(t, g)
		return code == http.StatusServiceUnavailable && strings.Contains(b, "queue store")
	})
	if a := sendQueued(t, g, "d-2", `{"lost":"no"}`); a.status != http.StatusServiceUnavailable || a.retryAfter == "" {
		t.Fatalf("unwritable store: %d (Retry-After %q), want 503 with Retry-After", a.status, a.retryAfter)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // several checks: the file is still not the one held
	if code, _ := readyz(t, g); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with a new, empty directory: %d, want 503 until a restart", code)
	}
}

// TestQueueAcrossReloads: a reload keeps the queue and its store; a new
// upstream.url takes the next attempts; a queued route added by the
// reload stores and delivers at once (202, never 503), and a route the
// reload stops queueing still delivers what it stored.
func TestQueueAcrossReloads(t *testing.T) {
	oldRecv := &queueReceiver{addr: freeAddr(t)}
	newRecv := &queueReceiver{addr: freeAddr(t)}
	dir := filepath.Join(t.TempDir(), "queue")
	path := queuedConfig(t, oldRecv.addr, dir)
	g := startQueued(t, path)
	if a := sendQueued(t, g, "d-1", `{"n":1}`); a.status != http.StatusAccepted {
		t.Fatalf("before the reload: %d", a.status)
	}
	y, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	y2 := strings.Replace(string(y), oldRecv.addr, newRecv.addr, 1) + `  - name: added
    path: /hooks/added
    signature: { scheme: github, secrets: ["${GH_QUEUED}"] }
    delivery: { mode: queued }
`
	if err := os.WriteFile(path, []byte(y2), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.Reload(t.Context(), "test"); err != nil {
		t.Fatalf("reload: %v", err)
	}
	newRecv.up(t)
	eventually(t, "the stored message delivered to the new upstream", func() bool { hs, _ := newRecv.received(); return len(hs) == 1 })
	body := `{"n":2}`
	a := post(t, "http://"+g.Addr()+"/hooks/added", githubHeaders("queued-github-secret", "d-2", body), body)
	if a.status != http.StatusAccepted {
		t.Fatalf("a queued route added by a reload: %d, want 202", a.status)
	}
	eventually(t, "the added route's message delivered", func() bool { hs, _ := newRecv.received(); return len(hs) == 2 })
	if a := sendQueued(t, g, "d-3", `{"n":3}`); a.status != http.StatusAccepted {
		t.Fatalf("the known queued route after the reload: %d, want 202", a.status)
	}
	eventually(t, "the known route's message delivered", func() bool { hs, _ := newRecv.received(); return len(hs) == 3 })
}

// TestReloadOpensTheQueue: a gate started without a queued route opens
// the store when a reload adds one, and the route takes messages at once;
// a store that cannot be opened fails the reload (the old configuration
// keeps serving) instead of answering 503.
func TestReloadOpensTheQueue(t *testing.T) {
	recv := &queueReceiver{addr: freeAddr(t)}
	recv.up(t)
	dir := filepath.Join(t.TempDir(), "queue")
	path := queuedConfig(t, recv.addr, dir)
	y, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	direct := strings.Replace(string(y), "delivery: { mode: queued, backoff: { initial: 50ms, max: 200ms } }", "", 1)
	if err := os.WriteFile(path, []byte(direct), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startQueued(t, path)
	if g.queue.Load() != nil {
		t.Fatal("a queue was opened with no queued route")
	}

	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(y), "file://"+dir, "file://"+blocker+"/queue", 1) // a directory under a file
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.Reload(t.Context(), "test"); err == nil {
		t.Fatal("a reload whose queue store cannot be opened succeeded")
	}
	if a := sendQueued(t, g, "d-0", `{"n":0}`); a.status != http.StatusNoContent { // the receiver answers 204
		t.Fatalf("after the refused reload the route is still direct: %d, want the receiver's 204", a.status)
	}

	if err := os.WriteFile(path, y, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.Reload(t.Context(), "test"); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if a := sendQueued(t, g, "d-1", `{"n":1}`); a.status != http.StatusAccepted {
		t.Fatalf("a route queued by a reload: %d, want 202", a.status)
	}
	eventually(t, "the message delivered", func() bool { hs, _ := recv.received(); return len(hs) == 2 })
}

// TestTheSmallestMaxBytesHoldsTheLargestMessage: with queue.max_bytes the
// smallest check accepts, a message of the largest body and about the
// largest head the listener takes (many headers, or a query the gate
// stores escaped, three times longer) is stored and delivered, not refused
// with 503 forever (outside attacks: max_bytes equal to the body, then
// the body + 320 KiB, passed check, yet such messages never fit).
func TestTheSmallestMaxBytesHoldsTheLargestMessage(t *testing.T) {
	const maxBody = 64 << 10
	pads := http.Header{}
	for i := range 62 { // 62 headers of 4 KiB: a head just under the listener's 256 KiB
		pads.Set(fmt.Sprintf("X-Pad-%02d", i), strings.Repeat("p", 4000))
	}
	for _, c := range []struct {
		name, query string
		headers     http.Header
	}{
		{"a head of headers", "", pads},
		{"a query stored escaped", "?a=" + strings.Repeat("!", 255_000) + "&b;c", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			recv := &queueReceiver{addr: freeAddr(t)}
			recv.up(t)
			t.Setenv("GH_QUEUED", "queued-github-secret")
			path := write(t, t.TempDir(), "tokengate.yaml", fmt.Sprintf(`
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
shutdown_grace: 2s
upstream: { url: "http://%s", max_body_size: 64KiB }
queue: { store: "file://%s", max_bytes: %d }
routes:
  - name: gh
    path: /hooks/gh
    signature: { scheme: github, secrets: ["${GH_QUEUED}"], max_body_size: 64KiB }
    delivery: { mode: queued }
`, recv.addr, filepath.Join(t.TempDir(), "queue"), int64(maxBody+config.MessageOverhead)))
			g := startQueued(t, path)
			body := `{"pad":"` + strings.Repeat("x", maxBody-10) + `"}`
			h := githubHeaders("queued-github-secret", "d-1", body)
			maps.Copy(h, c.headers)
			if a := post(t, "http://"+g.Addr()+"/hooks/gh"+c.query, h, body); a.status != http.StatusAccepted {
				t.Fatalf("the largest message on the smallest max_bytes: %d %+v, want 202", a.status, a)
			}
			eventually(t, "the message delivered", func() bool { _, bodies := recv.received(); return len(bodies) == 1 })
			if _, bodies := recv.received(); bodies[0] != body {
				t.Fatalf("the receiver got a body of %d bytes, want %d", len(bodies[0]), len(body))
			}
		})
	}
}

// TestOnlyMessagesReadinessSpeaksForMakeTheGateUnready: a message the
// store could not take makes the gate unready (every sender 503) until
// the next check only when it is one readiness speaks for; a larger one,
// replayed, kept every sender refused on a disk with room for them (an
// outside attack).
func TestOnlyMessagesReadinessSpeaksForMakeTheGateUnready(t *testing.T) {
	full := fmt.Errorf("%w: no space left on device", queue.ErrUnavailable)
	for _, c := range []struct {
		name string
		body int
		err  error
		want bool
	}{
		{"small, store unavailable", 300, full, true},
		{"at the probe's size", queue.ProbeMax, full, true},
		{"larger than the probe", queue.ProbeMax + 1, full, false},
		{"small, queue full", 300, queue.ErrFull, false},
		{"small, stored", 300, nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := &queue.Message{Body: make([]byte, c.body)}
			if got := speaksForReadiness(m, c.err); got != c.want {
				t.Fatalf("speaksForReadiness = %v, want %v", got, c.want)
			}
		})
	}
}

// closeHangs is a queue store whose Close waits for release, as one
// whose disk holds a commit does.
type closeHangs struct {
	queue.Store
	release chan struct{}
}

func (s closeHangs) Close() error { <-s.release; return nil }

// TestQueueStopGivesUpOnAStoreThatHangs: a shutdown does not wait past
// its deadline for a store whose disk does not answer, and waits for one
// that closes.
func TestQueueStopGivesUpOnAStoreThatHangs(t *testing.T) {
	for _, c := range []struct {
		name  string
		hangs bool
	}{{"a store that closes", false}, {"a store that hangs", true}} {
		t.Run(c.name, func(t *testing.T) {
			s := closeHangs{release: make(chan struct{})}
			if !c.hangs {
				close(s.release)
			}
			r := &queueRunner{log: zap.NewNop(), store: s}
			stopped := make(chan bool, 1)
			go func() { stopped <- r.stopBy(time.Now().Add(50 * time.Millisecond)) }()
			select {
			case ok := <-stopped:
				if ok == c.hangs {
					t.Fatalf("stopBy = %v, want %v", ok, !c.hangs)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("stopBy still waits 10 s after its deadline")
			}
			if c.hangs {
				close(s.release) // the disk answers: the stop finishes (no goroutine left)
				r.stop()
			}
		})
	}
}

// TestOpeningAQueueStoreThatWaitsSaysSo: a store that does not open at
// once (here its lock is held; in an outside attack its disk was frozen,
// and the gate neither listened nor logged for 40 s) gets a warning while
// the gate waits for it.
func TestOpeningAQueueStoreThatWaitsSaysSo(t *testing.T) {
	dir := t.TempDir()
	held, err := queue.OpenFile(queue.FileOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	cfg, err := config.Load(queuedConfig(t, "127.0.0.1:1", dir), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func(d time.Duration) { openSlowAfter = d }(openSlowAfter)
	openSlowAfter = 50 * time.Millisecond
	core, logs := observer.New(zapcore.WarnLevel)
	if r, err := openQueue(cfg, http.DefaultTransport, nil, nil, zap.New(core), 0); err == nil {
		r.stop()
		t.Fatal("opened a store whose lock another holds")
	}
	if n := logs.FilterMessageSnippet("still opening").Len(); n != 1 {
		t.Fatalf("%d warnings that the store is still opening, want 1; logs: %v", n, logs.All())
	}
}
