package queue

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/config"
)

func queueConfig(t *testing.T, dir, upstream string) *config.Config {
	t.Helper()
	y := "upstream: " + upstream + "\nroutes:\n  - name: gh\n    path: /hooks/gh\n    signature: { scheme: github, secrets: [\"${GH}\"] }\n    delivery: { mode: queued }\nqueue: { store: 'file://" + dir + "' }\n"
	cfg, err := config.Parse([]byte(y), dir, config.Options{LookupEnv: func(string) (string, bool) { return "s", true }})
	must(t, err)
	return cfg
}

// TestOperatorsReachARunningGateOverItsSocket: while a gate holds the
// file store, Connect reaches it over the control socket (mode 0600):
// list a dead letter, retry it, drop it. With the gate stopped, Connect
// opens the file itself.
func TestOperatorsReachARunningGateOverItsSocket(t *testing.T) {
	rc := newReceiver(t)
	rc.answerWith(http.StatusNotFound, nil, "no such hook")
	dir := t.TempDir()
	cfg := queueConfig(t, dir, rc.URL)
	store, err := OpenFromConfig(cfg)
	must(t, err)
	q, err := New(store, Options{Routes: RoutesFromConfig(cfg), Target: mustURL(rc.URL)})
	must(t, err)
	m := &Message{Route: "gh", Method: "POST", Path: "/hooks/gh", Body: []byte("{}")}
	must(t, q.Enqueue(context.Background(), m))
	if _, err := q.DeliverDue(context.Background()); err != nil {
		t.Fatal(err)
	}

	l, err := ListenControl(dir)
	must(t, err)
	fi, err := os.Stat(filepath.Join(dir, ControlSocket))
	must(t, err)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want 0600", fi.Mode().Perm())
	}
	srv := &http.Server{Handler: ControlHandler(q), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()

	ctx := context.Background()
	op, closer, err := Connect(ctx, cfg)
	must(t, err)
	if _, ok := op.(*ControlClient); !ok {
		t.Fatalf("Connect with the gate running gave %T, want the control socket's client", op)
	}
	dead, err := op.List(ctx, "gh", Dead, 0)
	must(t, err)
	if len(dead) != 1 || dead[0].ID != m.ID || dead[0].Reason != "refused" || dead[0].Last.Status != 404 || dead[0].Body != nil {
		t.Fatalf("dead letters over the socket: %+v (a listing carries no bodies)", dead)
	}
	if whole, err := op.Get(ctx, m.ID); err != nil || string(whole.Body) != "{}" {
		t.Fatalf("show over the socket: %+v, %v; want the message whole", whole, err)
	}
	if n, err := op.RetryDead(ctx, "gh"); err != nil || n != 1 {
		t.Fatalf("retry-dead: %d, %v", n, err)
	}
	got, err := op.Get(ctx, m.ID)
	must(t, err)
	if got.State != Pending || got.Attempts != 0 || got.Last == nil {
		t.Fatalf("after retry: %+v", got.Progress)
	}
	must(t, op.Drop(ctx, m.ID))
	if _, err := op.Get(ctx, m.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after drop: %v, want ErrNotFound", err)
	}
	closer.Close()
	must(t, srv.Close())
	must(t, store.Close())

	op, closer, err = Connect(ctx, cfg)
	must(t, err)
	defer closer.Close()
	if _, ok := op.(*Queue); !ok {
		t.Fatalf("Connect with no gate gave %T, want the store itself", op)
	}
	if st, err := op.Stats(ctx); err != nil || len(st) != 0 {
		t.Fatalf("stats: %+v, %v", st, err)
	}
}

// TestControlClientSaysWhenAChangeMayHaveBeenMade: a drop or a retry whose
// connection breaks after the request went out (the gate killed while it
// answered) may have been made, and the error says so; a socket nobody
// answers on, and a read, fail plainly.
func TestControlClientSaysWhenAChangeMayHaveBeenMade(t *testing.T) {
	dir := t.TempDir()
	l, err := net.Listen("unix", filepath.Join(dir, ControlSocket))
	must(t, err)
	defer l.Close()
	go func() { // reads each request whole, then hangs up without an answer
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = http.ReadRequest(bufio.NewReader(c))
			c.Close()
		}
	}()
	gone := DialControl(filepath.Join(dir, "nobody"))
	hangs := DialControl(dir)
	ctx := context.Background()
	cases := []struct {
		name    string
		call    func() error
		mayHave bool
	}{
		{"drop, hung up after the request", func() error { return hangs.Drop(ctx, "x") }, true},
		{"retry, hung up after the request", func() error { return hangs.Retry(ctx, "x") }, true},
		{"retry --dead, hung up after the request", func() error { _, err := hangs.RetryDead(ctx, "gh"); return err }, true},
		{"list, hung up after the request", func() error { _, err := hangs.List(ctx, "gh", Pending, 1); return err }, false},
		{"drop, no gate on the socket", func() error { return gone.Drop(ctx, "x") }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if err == nil {
				t.Fatal("no error")
			}
			if got := strings.Contains(err.Error(), "may have been made"); got != c.mayHave {
				t.Fatalf("error %q: says the change may have been made: %v, want %v", err, got, c.mayHave)
			}
		})
	}
}
