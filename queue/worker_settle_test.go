package queue

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/tokengate/signature/redistest"
)

// cutProxy forwards a loopback port to a server; cut closes every
// connection and refuses new ones (Redis gone for its clients) until
// mend listens on the same port again.
type cutProxy struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	p := &cutProxy{addr: ln.Addr().String(), target: target}
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *cutProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() { _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.ln.Close()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

func (p *cutProxy) mend() error {
	var ln net.Listener
	var err error
	for range 100 { // the port may linger a moment
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			p.serve(ln)
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// TestOutcomeIsWrittenAgainAfterAStoreBlip: the receiver took a message
// while Redis was unreachable for a second; its outcome is written once
// Redis is back, so it is neither left leased until its lease runs out
// (an outside attack saw acknowledged messages wait about 65 s on a live
// replica) nor delivered again.
func TestOutcomeIsWrittenAgainAfterAStoreBlip(t *testing.T) {
	srv := redistest.Start(t)
	px := newCutProxy(t, srv.Addr())
	s, err := OpenRedis("redis://"+px.addr+"/0", RedisOptions{Lease: time.Hour, Consumer: "a"})
	must(t, err)
	defer s.Close()
	rc := newReceiver(t)
	var once sync.Once
	mended := make(chan error, 1)
	rc.answer = func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() {
			px.cut() // Redis goes away while the receiver takes the message
			go func() { time.Sleep(time.Second); mended <- px.mend() }()
		})
	}
	q, err := New(s, Options{Routes: []RouteOptions{{Name: "gh", Concurrency: 1}}, Target: mustURL(rc.URL)})
	must(t, err)
	m := &Message{Route: "gh", Method: http.MethodPost, Path: "/hooks"}
	must(t, q.Enqueue(context.Background(), m))
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() { _ = q.Run(ctx) }()
	select {
	case err := <-mended:
		must(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("the receiver was not reached within 20s")
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := s.Get(context.Background(), m.ID)
		if errors.Is(err, ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("15s after Redis came back the delivered message is still stored (%v): its outcome was not written again", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := len(rc.got()); n != 1 {
		t.Fatalf("the receiver got %d attempts, want 1", n)
	}
}
