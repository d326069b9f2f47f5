package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/tokengate/tokengate/queue"
)

// queuedOpts are the flags of the "queued" subcommand.
type queuedOpts struct {
	d, down, kill time.Duration
	kills, rounds int
	conns         int
	rate          float64 // offered load of the down and kill runs (0: closed loop)
	cpuRate       float64 // offered load of the throughput rounds (0: closed loop)
	concurrency   int
	store         string // file | redis
	drain         time.Duration
	out, only     string
	sweep         string // connection counts of the throughput rounds (empty: conns)
}

// receiver is the counting webhook receiver in the bench process: every
// request it answers 200 is recorded in the ledger by its delivery id.
// It can be taken down (its listener closed, connections refused) and
// brought back on the same address.
type receiver struct {
	addr     string
	led      atomic.Pointer[ledger]
	inFlight atomic.Int64
	mu       sync.Mutex
	srv      *http.Server
}

func newReceiver() (*receiver, error) {
	r := &receiver{addr: freePort()}
	r.led.Store(newLedger())
	return r, r.up()
}

func (r *receiver) URL() string { return "http://" + r.addr }

// up starts serving on the receiver's address.
func (r *receiver) up() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.srv != nil {
		return nil
	}
	var ln net.Listener
	var err error
	for range 100 { // the port may linger a moment after down
		if ln, err = net.Listen("tcp", r.addr); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 10 * time.Second}
	go func(s *http.Server) { _ = s.Serve(ln) }(r.srv)
	return nil
}

// down closes the listener and every connection.
func (r *receiver) down() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.srv != nil {
		_ = r.srv.Close()
		r.srv = nil
	}
}

func (r *receiver) serve(w http.ResponseWriter, q *http.Request) {
	r.inFlight.Add(1)
	defer r.inFlight.Add(-1)
	_, _ = io.Copy(io.Discard, io.LimitReader(q.Body, 1<<20))
	if id := q.Header.Get(queue.HeaderDeliveryID); id != "" {
		r.led.Load().deliver(id)
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"ok":true}`))
}

// queuedEnv is what the three measurements share.
type queuedEnv struct {
	*env
	o     queuedOpts
	recv  *receiver
	redis *redisProc
	token string
}

// queuedConfig writes a config with one queued route of its own name (so
// runs sharing one Redis stay apart) on a fresh file store directory or
// the bench's redis-server. Backoff is compressed (200ms..2s) so that an
// outage drains in seconds; max_attempts is raised to match, since the
// default 25 attempts at this backoff span about 40 s.
func (q *queuedEnv) queuedConfig(name string, conns int) (string, error) {
	store := "file://" + filepath.Join(q.dir, "queue-"+name)
	if q.redis != nil {
		store = q.redis.URL(map[string]int{"down": 2, "kill": 3}[name]) // a database per run: no run delivers another's leftovers
	}
	path := filepath.Join(q.dir, "queued-"+name+".yaml")
	cfg := fmt.Sprintf(`listen: %s
admin_listen: %s
upstream: { url: %q, response_timeout: 60s }
issuers:
  - name: idp
    issuer: %q
    audiences: [%q]
queue: { store: %q }
routes:
  - name: %s
    path_prefix: /hooks/q
    delivery: { mode: queued, concurrency: %d, timeout: 5s, max_attempts: 1000, backoff: { initial: 200ms, max: 2s } }
`, freePort(), freePort(), q.recv.URL(), q.idp.Issuer(), benchAud, store, "q"+strings.ReplaceAll(name, "-", ""), q.routeConcurrency(conns))
	return path, os.WriteFile(path, []byte(cfg), 0o600)
}

// routeConcurrency is the queued route's delivery concurrency in a run at
// conns connections: -concurrency, or conns when it is 0.
func (q *queuedEnv) routeConcurrency(conns int) int {
	if q.o.concurrency > 0 {
		return q.o.concurrency
	}
	return conns
}

// ackResult is one answer to the queued load.
type ackResult struct {
	status  int
	id      string
	latency time.Duration
	err     bool
}

// sendQueued posts one webhook and reads the delivery id of a 202.
func sendQueued(c *http.Client, base, token string) ackResult {
	req, err := http.NewRequest(http.MethodPost, base+"/hooks/q", strings.NewReader(smallBody))
	if err != nil {
		return ackResult{err: true}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return ackResult{err: true, latency: time.Since(start)}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	r := ackResult{status: resp.StatusCode, latency: time.Since(start)}
	if resp.StatusCode == http.StatusAccepted {
		r.id = ackedID(b)
	}
	return r
}

// ackedID is the delivery id of a queued acknowledgement,
// {"result":"queued","delivery_id":"…"} as the gate writes it (found by
// search: a JSON decode per answer would cost the queued rounds load
// generator CPU the bare rounds do not pay); "" when it is not one.
func ackedID(b []byte) string {
	const result, key = `"result":"queued"`, `"delivery_id":"`
	if !bytes.Contains(b, []byte(result)) {
		return ""
	}
	_, rest, ok := bytes.Cut(b, []byte(key))
	if !ok {
		return ""
	}
	id, _, ok := bytes.Cut(rest, []byte(`"`))
	if !ok || bytes.ContainsAny(id, `\`) {
		return ""
	}
	return string(id)
}

// queuedLoad is a closed loop on the queued route until ctx ends: an
// acknowledgement (202 with a delivery id) goes into led; transport errors
// (a killed gate) are counted and retried after a pause. It returns the
// answers in the stats type the other scenarios use.
func queuedLoad(ctx context.Context, base func() string, token string, conns int, perSecond float64, led *ledger) (*stats, int64) {
	var lim *rate.Limiter // nil: closed loop, as fast as answers come
	if perSecond > 0 {
		lim = rate.NewLimiter(rate.Limit(perSecond), 1)
	}
	c := client(conns)
	defer c.CloseIdleConnections()
	var mu sync.Mutex
	var errs atomic.Int64
	st := &stats{}
	var wg sync.WaitGroup
	start := time.Now()
	for range conns {
		wg.Go(func() {
			var local []result
			for ctx.Err() == nil {
				if lim != nil && lim.Wait(ctx) != nil {
					break
				}
				r := sendQueued(c, base(), token)
				if r.err {
					if ctx.Err() == nil {
						errs.Add(1)
						time.Sleep(20 * time.Millisecond)
					}
					continue
				}
				if r.id != "" {
					led.ack(r.id)
				}
				local = append(local, result{status: r.status, latency: r.latency})
			}
			mu.Lock()
			st.results = append(st.results, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	st.elapsed = time.Since(start)
	return st, errs.Load()
}

// waitDrain waits until every acknowledged message was delivered, or limit.
func waitDrain(led *ledger, limit time.Duration) (time.Duration, bool) {
	start := time.Now()
	for led.backlog() > 0 {
		if time.Since(start) > limit {
			return time.Since(start), false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start), true
}

// kill9 sends SIGKILL to the tokengate process the harness started (its
// PID only) and reaps it.
func kill9(p *proc) {
	if p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

// redisProc is a redis-server the bench started with the durability the
// reference asks of a queue store: appendonly yes, appendfsync always.
type redisProc struct {
	cmd  *exec.Cmd
	port int
}

func startRedis(dir string) (*redisProc, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server not installed (apt-get install redis-server)")
	}
	_, ps, _ := net.SplitHostPort(freePort())
	port, _ := strconv.Atoi(ps)
	rdir := filepath.Join(dir, "redis")
	if err := os.MkdirAll(rdir, 0o700); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--port", ps, "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
		"--appendfsync", "always", "--dir", rdir, "--protected-mode", "no")
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r := &redisProc{cmd: cmd, port: port}
	if err := waitTCP(fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second); err != nil {
		r.stop()
		return nil, err
	}
	return r, nil
}

func (r *redisProc) URL(db int) string { return fmt.Sprintf("redis://127.0.0.1:%d/%d", r.port, db) }

// stop ends the redis-server by its PID.
func (r *redisProc) stop() {
	_ = r.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-done
	}
}
