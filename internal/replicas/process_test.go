package replicas

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	binDir    string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tokengate-replicas-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// binary builds cmd/tokengate once for the package's tests.
func binary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary and runs three gates")
	}
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		binPath = filepath.Join(binDir, "tokengate")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/tokengate")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// gate is one running tokengate process.
type gate struct {
	cmd    *exec.Cmd
	egress string // the egress listener's address
	admin  string
	mu     sync.Mutex
	logs   strings.Builder
	exited chan struct{}
}

// start runs `tokengate serve --config path` with env added, and waits
// (at most 30 s) until its egress listener and admin listener are up.
func start(t *testing.T, bin, path string, env ...string) *gate {
	t.Helper()
	g := &gate{cmd: exec.Command(bin, "serve", "--config", path), exited: make(chan struct{})}
	g.cmd.Env = append(os.Environ(), env...)
	stderr, err := g.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		var once sync.Once
		for sc.Scan() {
			var line struct {
				Msg   string `json:"msg"`
				Addr  string `json:"addr"`
				Admin string `json:"admin"`
			}
			g.mu.Lock()
			g.logs.WriteString(sc.Text() + "\n")
			if json.Unmarshal(sc.Bytes(), &line) == nil {
				switch line.Msg {
				case "egress listening":
					g.egress = line.Addr
				case "tokengate running the calling side only (no upstream or routes configured)":
					g.admin = line.Admin
				}
			}
			up := g.egress != "" && g.admin != ""
			g.mu.Unlock()
			if up {
				once.Do(func() { close(ready) })
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() { _ = g.cmd.Wait(); close(g.exited) }()
	t.Cleanup(func() { g.stop(t) })
	select {
	case <-ready:
	case <-g.exited:
		t.Fatalf("tokengate exited at start:\n%s", g.log())
	case <-time.After(30 * time.Second):
		t.Fatalf("tokengate did not start listening within 30 s:\n%s", g.log())
	}
	return g
}

func (g *gate) log() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.logs.String()
}

// count is the number of log lines containing s.
func (g *gate) count(s string) int { return strings.Count(g.log(), s) }

// stop sends SIGTERM and waits (at most 30 s) for the exit, then kills.
func (g *gate) stop(t *testing.T) {
	select {
	case <-g.exited:
		return
	default:
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(30 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.exited
		t.Errorf("tokengate did not exit within 30 s of SIGTERM")
	}
}

// metric reads one sample of the gate's /metrics ("" if none).
func (g *gate) metric(t *testing.T, sample string) string {
	t.Helper()
	resp, err := http.Get("http://" + g.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, sample+" "); ok {
			return v
		}
	}
	return ""
}

// load sends app requests through each gate's egress listener, one
// after the other per gate every 50 ms, until stop is closed. It counts
// every request and every one that did not reach the vendor's API with
// a valid token (anything but 200).
type load struct {
	sent, failed atomic.Int64
	stop         chan struct{}
	wg           sync.WaitGroup
	mu           sync.Mutex
	firstFailure string
}

func startLoad(gates []*gate, path string) *load {
	l := &load{stop: make(chan struct{})}
	client := &http.Client{Timeout: 20 * time.Second}
	for i, g := range gates {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				l.sent.Add(1)
				resp, err := client.Post("http://"+g.egress+path, "application/json", strings.NewReader(`{"event":"x"}`))
				code := 0
				var body []byte
				if err == nil {
					body, _ = io.ReadAll(io.LimitReader(resp.Body, 512))
					resp.Body.Close()
					code = resp.StatusCode
				}
				if code != http.StatusOK {
					l.failed.Add(1)
					l.mu.Lock()
					if l.firstFailure == "" {
						l.firstFailure = fmt.Sprintf("gate %d: status %d %s err %v", i, code, body, err)
					}
					l.mu.Unlock()
				}
			}
		})
	}
	return l
}

// end stops the load and reports (sent, failed, first failure).
func (l *load) end() (int64, int64, string) {
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sent.Load(), l.failed.Load(), l.firstFailure
}

// eventually polls cond for up to 60 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// writeConfig writes y to dir/name.
func writeConfig(t *testing.T, dir, name, y string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
