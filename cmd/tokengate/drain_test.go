package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tokengate/tokengate/verifier/verifiertest"
)

// buildBinary compiles tokengate the way the Dockerfile does.
func buildBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "tokengate")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestSIGTERMDrainsInFlightWebhooks runs the real binary: 50 webhooks are
// in flight at a slow receiver when SIGTERM arrives. Every one must finish
// with the receiver's answer, new connections must be refused, and the
// process must exit 0 within the grace period.
func TestSIGTERMDrainsInFlightWebhooks(t *testing.T) {
	bin := buildBinary(t)
	idp := verifiertest.New()
	defer idp.Close()
	var arrived atomic.Int64
	release := make(chan struct{})
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		arrived.Add(1)
		<-release
		_, _ = io.WriteString(w, "done:"+r.URL.Path)
	}))
	defer recv.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	path := filepath.Join(t.TempDir(), "tokengate.yaml")
	if err := os.WriteFile(path, []byte(gateYAML(idp, recv.URL, hooksRoute)), 0o600); err != nil { // shutdown_grace: 5s
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--config", path)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	addrc := make(chan string, 1)
	var logs strings.Builder
	var logMu sync.Mutex
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logMu.Lock()
			logs.WriteString(sc.Text() + "\n")
			logMu.Unlock()
			var line struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "tokengate listening" {
				addrc <- line.Addr
			}
		}
	}()
	var addr string
	select {
	case addr = <-addrc:
	case <-time.After(10 * time.Second):
		t.Fatal("tokengate did not start")
	}
	tok := idp.Mint(idp.Claims(testAud, "webhooks:write"))
	type result struct {
		code int
		body string
		err  error
	}
	results := make(chan result, 50)
	for i := range 50 {
		go func() {
			req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("http://%s/hooks/%d", addr, i), strings.NewReader(`{"n":1}`))
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
			if err != nil {
				results <- result{err: err}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			results <- result{code: resp.StatusCode, body: string(b)}
		}()
	}
	eventually(t, "50 webhooks in flight at the receiver", func() bool { return arrived.Load() == 50 })

	termAt := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	eventually(t, "new connections refused", func() bool {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return false
		}
		return true
	})
	close(release)
	for range 50 {
		r := <-results
		if r.err != nil || r.code != 200 || !strings.HasPrefix(r.body, "done:/hooks/") {
			t.Errorf("in-flight webhook: code %d body %q err %v", r.code, r.body, r.err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			logMu.Lock()
			t.Fatalf("exit: %v\n%s", err, logs.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("did not exit within the 5s grace period")
	}
	if d := time.Since(termAt); d > 5*time.Second {
		t.Fatalf("exit took %v", d)
	}
}
