package main

import (
	"bufio"
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
	"syscall"
	"time"
)

// proc is a process under measurement: tokengate or the bare proxy.
type proc struct {
	cmd     *exec.Cmd
	addr    string // public address
	admin   string // admin address (tokengate only)
	started time.Time
	ready   time.Duration // start → ready
	logs    *strings.Builder
}

// tokengateEnv is added to tokengate's environment only (e.g. GOMEMLIMIT),
// never to the load generator's.
var tokengateEnv []string

// tokengateLogLevel is tokengate's --log-level: "info" by default, the
// access log on as users run it.
var tokengateLogLevel = "info"

// buildTokengate compiles the tokengate binary with the Dockerfile's flags.
func buildTokengate(dir string) (string, error) {
	bin := filepath.Join(dir, "tokengate")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/tokengate")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building tokengate (run the bench from the repository root): %v\n%s", err, out)
	}
	return bin, nil
}

func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startTokengate runs the binary on config and waits for /readyz.
func startTokengate(bin, config string) (*proc, error) {
	pub, admin, err := listenAddrs(config)
	if err != nil {
		return nil, err
	}
	return startTokengateAt(bin, config, pub, admin)
}

// startTokengateAt runs the binary on config, whose load target is pub,
// and waits for /readyz on admin.
func startTokengateAt(bin, config, pub, admin string) (*proc, error) {
	p := &proc{logs: &strings.Builder{}, addr: pub, admin: admin}
	p.cmd = exec.Command(bin, "serve", "--config", config, "--log-level", tokengateLogLevel)
	p.cmd.Env = append(os.Environ(), tokengateEnv...)
	stderr, _ := p.cmd.StderrPipe()
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if p.logs.Len() < 1<<16 {
				p.logs.WriteString(sc.Text() + "\n")
			}
		}
	}()
	if err := waitHTTP("http://"+p.admin+"/readyz", 20*time.Second); err != nil {
		p.stop()
		return nil, fmt.Errorf("tokengate not ready: %w\n%s", err, p.logs.String())
	}
	p.ready = time.Since(p.started)
	return p, nil
}

// listenAddrs reads listen and admin_listen back from a bench config.
func listenAddrs(config string) (string, string, error) {
	b, err := os.ReadFile(config)
	if err != nil {
		return "", "", err
	}
	var pub, admin string
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "listen: "); ok {
			pub = strings.Trim(v, `"`)
		}
		if v, ok := strings.CutPrefix(l, "admin_listen: "); ok {
			admin = strings.Trim(v, `"`)
		}
	}
	if pub == "" || admin == "" {
		return "", "", errors.New("bench config lacks listen or admin_listen")
	}
	return pub, admin, nil
}

// startBare runs this program as the bare reverse proxy.
func startBare(upstream string) (*proc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	p := &proc{addr: freePort(), logs: &strings.Builder{}}
	p.cmd = exec.Command(self, "bare-proxy", "-listen", p.addr, "-upstream", upstream)
	p.cmd.Stderr = os.Stderr
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	if err := waitTCP(p.addr, 10*time.Second); err != nil {
		p.stop()
		return nil, err
	}
	p.ready = time.Since(p.started)
	return p, nil
}

func waitHTTP(url string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	c := &http.Client{Timeout: time.Second}
	for {
		resp, err := c.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v (last: %v)", url, limit, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func waitTCP(addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (p *proc) stop() {
	if p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
	}
}

// cpuSeconds is the process's user+system CPU time so far.
func (p *proc) cpuSeconds() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(fields[11], 64)
	st, _ := strconv.ParseFloat(fields[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// memKB reads VmRSS (now) or VmHWM (peak) from /proc/<pid>/status.
func (p *proc) memKB(field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// metric reads one unlabelled value from tokengate's /metrics.
func (p *proc) metric(name string) float64 {
	if p.admin == "" {
		return 0
	}
	resp, err := http.Get("http://" + p.admin + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// runBareProxy is the "bare-proxy" subcommand: httputil.ReverseProxy with
// Rewrite/SetURL and the same transport settings as tokengate, nothing else.
func runBareProxy(ctx context.Context, listen, upstream string) error {
	srv := &http.Server{Addr: listen, Handler: newBareProxy(upstream), ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); _ = srv.Shutdown(context.Background()) }()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// selfCPU is the bench process's own CPU seconds so far (its load
// generator and receiver), user and system.
func selfCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// per10k is seconds per 10,000 of n (0 when n is 0).
func per10k(seconds float64, n int) float64 {
	if n == 0 {
		return 0
	}
	return seconds / float64(n) * 1e4
}
