package redistest

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Stall is a TCP proxy in front of a server that can hold the server's
// replies back (the commands still reach the server and run), as a busy or
// blipping Redis does: the client times out on a command that did run.
type Stall struct {
	ln    net.Listener
	to    string
	done  chan struct{}
	mu    sync.Mutex
	next  time.Duration // hold the next reply this long
	gate  chan struct{} // while non-nil, every reply waits for it to close
	conns []net.Conn
	wg    sync.WaitGroup
}

// NewStall proxies a loopback port to addr ("127.0.0.1:6379") until the
// test ends.
func NewStall(t testing.TB, addr string) *Stall {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Stall{ln: ln, to: addr, done: make(chan struct{})}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.close)
	return s
}

// URL is the proxy's redis:// URL.
func (s *Stall) URL() string { return "redis://" + s.ln.Addr().String() + "/0" }

// HoldNext delays the next reply (on any connection) by d.
func (s *Stall) HoldNext(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next = d
}

// Hold holds every reply from now until Resume.
func (s *Stall) Hold() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gate == nil {
		s.gate = make(chan struct{})
	}
}

// Resume lets held replies go (to clients that may have given up).
func (s *Stall) Resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gate != nil {
		close(s.gate)
		s.gate = nil
	}
}

func (s *Stall) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		srv, err := net.DialTimeout("tcp", s.to, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		s.mu.Lock()
		s.conns = append(s.conns, c, srv)
		s.mu.Unlock()
		s.wg.Add(2)
		go func() { defer s.wg.Done(); _, _ = io.Copy(srv, c); srv.Close() }()
		go func() { defer s.wg.Done(); s.replies(c, srv); c.Close() }()
	}
}

// replies copies the server's replies to the client, holding them back as
// asked.
func (s *Stall) replies(c, srv net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := srv.Read(buf)
		if n > 0 {
			s.mu.Lock()
			d, gate := s.next, s.gate
			s.next = 0
			s.mu.Unlock()
			select {
			case <-time.After(d):
			case <-s.done:
				return
			}
			if gate != nil {
				select {
				case <-gate:
				case <-s.done:
					return
				}
			}
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (s *Stall) close() {
	close(s.done)
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}
