package queuecli

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/gate"
	"github.com/tokengate/tokengate/queue"
)

const secret = "queuecli-github-secret"

// setup writes a config with one queued GitHub route in front of a
// receiver answering status, and returns its path.
func setup(t *testing.T, status *atomic.Int32) (string, *atomic.Int32) {
	t.Helper()
	var got atomic.Int32
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s := int(status.Load()); s != http.StatusNoContent {
			w.WriteHeader(s)
			return
		}
		got.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(recv.Close)
	t.Setenv("GH_QUEUECLI", secret)
	dir := t.TempDir()
	path := filepath.Join(dir, "tokengate.yaml")
	y := fmt.Sprintf(`
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream: %s
queue: { store: "file://%s" }
routes:
  - name: gh
    path: /hooks/gh
    signature: { scheme: github, secrets: ["${GH_QUEUECLI}"] }
    delivery: { mode: queued }
`, recv.URL, filepath.Join(dir, "queue"))
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, &got
}

func send(t *testing.T, addr, delivery, body string) {
	t.Helper()
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/hooks/gh", strings.NewReader(body))
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
	req.Header.Set("X-Github-Delivery", delivery)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("send %s: %d, want 202", delivery, resp.StatusCode)
	}
}

// run is `tokengate queue cmd args` with o; it returns the output.
func run(t *testing.T, path, cmd string, args []string, o Options) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var out strings.Builder
	err := Run(ctx, path, cmd, args, o, &out)
	return out.String(), err
}

func mustRun(t *testing.T, path, cmd string, args []string, o Options) string {
	t.Helper()
	out, err := run(t, path, cmd, args, o)
	if err != nil {
		t.Fatalf("queue %s %v: %v", cmd, args, err)
	}
	return out
}

// eventually polls cond for up to 30s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var idRE = regexp.MustCompile(`(?m)^([0-9a-f]{28})\s`)

func ids(out string) []string {
	var r []string
	for _, m := range idRE.FindAllStringSubmatch(out, -1) {
		r = append(r, m[1])
	}
	return r
}

// TestQueueCommandsOnARunningAndAStoppedGate: list, show, drop, retry
// and stats through a running gate's control socket (it holds the
// store's lock, so nothing else could answer), then on the store itself
// once the gate stopped.
func TestQueueCommandsOnARunningAndAStoppedGate(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusBadRequest) // a refusal: a dead letter at once
	path, got := setup(t, &status)
	g, err := gate.New(path, gate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer g.Shutdown(context.Background())
	sock := filepath.Join(filepath.Dir(path), "queue", queue.ControlSocket)
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("control socket %s: %v %v, want a 0600 socket", sock, fi, err)
	}
	for i := range 3 {
		send(t, g.Addr(), fmt.Sprintf("d-%d", i), fmt.Sprintf(`{"n":%d}`, i))
	}
	dead := Options{State: "dead"}
	var ds []string
	eventually(t, "three dead letters", func() bool { ds = ids(mustRun(t, path, "list", nil, dead)); return len(ds) == 3 })

	show := mustRun(t, path, "show", []string{ds[0]}, Options{})
	for _, want := range []string{`"delivery_id": "`, `"body": "{\"n\":0}"`, `"state": "dead"`, `"reason": "refused"`} {
		if !strings.Contains(show, want) {
			t.Errorf("show has no %s:\n%s", want, show)
		}
	}
	if out := mustRun(t, path, "drop", []string{ds[0]}, Options{}); !strings.Contains(out, "dropped") {
		t.Fatalf("drop: %q", out)
	}
	if _, err := run(t, path, "show", []string{ds[0]}, Options{}); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("show of a dropped message: %v, want ErrNotFound", err)
	}
	status.Store(http.StatusNoContent)
	mustRun(t, path, "retry", []string{ds[1]}, Options{})
	eventually(t, "the retried message delivered", func() bool { return got.Load() == 1 })
	if err := g.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	// Stopped: the store itself.
	if left := ids(mustRun(t, path, "list", nil, dead)); len(left) != 1 || left[0] != ds[2] {
		t.Fatalf("stopped gate, dead letters %v, want [%s]", left, ds[2])
	}
	// A configuration that no longer queues the route still reaches its
	// dead letters.
	y, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	renamed := filepath.Join(filepath.Dir(path), "renamed.yaml")
	if err := os.WriteFile(renamed, []byte(strings.ReplaceAll(string(y), "name: gh\n", "name: gh-renamed\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	if left := ids(mustRun(t, renamed, "list", nil, dead)); len(left) != 1 || left[0] != ds[2] {
		t.Fatalf("a route no longer configured, dead letters %v, want [%s]", left, ds[2])
	}
	if out := mustRun(t, renamed, "retry", nil, Options{Dead: true, Route: "gh"}); !strings.Contains(out, "1 dead letters retried") {
		t.Fatalf("retry --dead --route of a route no longer configured: %q", out)
	}
	if p := ids(mustRun(t, path, "list", nil, Options{})); len(p) != 1 || p[0] != ds[2] {
		t.Fatalf("pending after retry --dead: %v, want [%s]", p, ds[2])
	}
	if st := mustRun(t, path, "stats", nil, Options{}); !regexp.MustCompile(`(?m)^gh\s+1\s+0\s`).MatchString(st) {
		t.Fatalf("stats:\n%s", st)
	}
	mustRun(t, path, "drop", []string{ds[2]}, Options{})
	if p := ids(mustRun(t, path, "list", nil, Options{})); len(p) != 0 {
		t.Fatalf("after drop: %v", p)
	}
	if got.Load() != 1 {
		t.Fatalf("the receiver got %d messages, want only the retried one", got.Load())
	}
}

func TestQueueCommandUsage(t *testing.T) {
	for _, c := range []struct {
		cmd  string
		args []string
		o    Options
	}{
		{"", nil, Options{}},
		{"bogus", nil, Options{}},
		{"show", nil, Options{}},
		{"retry", nil, Options{}},
		{"retry", []string{"x"}, Options{Dead: true}},
		{"list", nil, Options{State: "done"}},
		{"list", nil, Options{Limit: -1}},
	} {
		if _, err := run(t, "/nonexistent.yaml", c.cmd, c.args, c.o); !errors.Is(err, ErrUsage) {
			t.Errorf("queue %q %v %+v: %v, want a usage error", c.cmd, c.args, c.o, err)
		}
	}
}
