// Package redistest runs a real redis-server (the Debian package's binary)
// on a free loopback port, for tests and the bench harness. Outside CI a
// machine without redis-server skips the tests that need it; in CI (CI
// set) its absence fails them.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// ErrNotInstalled: no redis-server on PATH.
var ErrNotInstalled = errors.New("redis-server not installed (apt-get install redis-server)")

// Server is one redis-server process; Stop and Start keep its port.
type Server struct {
	bin  string
	port int
	dir  string
	cmd  *exec.Cmd
}

// New starts redis-server, without persistence, on a free port; dir holds
// its working files.
func New(dir string) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNotInstalled
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &Server{bin: bin, port: port, dir: dir}
	return s, s.Restart()
}

// Start runs New for a test, stopped at its end; it skips the test when
// redis-server is missing, or fails it when CI is set.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := New(t.TempDir())
	if errors.Is(err, ErrNotInstalled) {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v, and CI is set: .ci/run installs it", err)
		}
		t.Skipf("%v; CI runs this test", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// URL is the server's redis:// URL.
func (s *Server) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", s.port) }

// Addr is the server's host:port.
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

// Start restarts a stopped server on its port (for tests).
func (s *Server) Start() {
	if err := s.Restart(); err != nil {
		panic(err)
	}
}

// Restart starts the server on its port, if stopped, and waits until it
// answers PING.
func (s *Server) Restart() error {
	if s.cmd != nil {
		return nil
	}
	cmd := exec.Command(s.bin, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir, "--protected-mode", "no")
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting redis-server: %w", err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if s.ping() {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Stop()
	return fmt.Errorf("redis-server on port %d did not answer PING", s.port)
}

// Stop kills the server (as a crash would) and waits for it to exit.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

func (s *Server) ping() bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.port), 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && line == "+PONG\r\n"
}
