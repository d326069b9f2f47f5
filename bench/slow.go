package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// slowConns opens n connections to a real tokengate process, in three
// kinds: denied (no token, a body announced and never sent: must be
// answered and closed at once), header trickle (headers one byte per
// second: ReadHeaderTimeout ends them), and allowed (valid token, body one
// byte per second toward the receiver until body_read_timeout ends it).
// allowedShare is the fraction of allowed connections (the rest is split
// between the other two). It reports tokengate's RSS before, while all n
// are open, and its peak, and how the connections ended.
func slowConns(ctx context.Context, n int, hold time.Duration, allowedShare float64) error {
	e, err := newEnv(options{})
	if err != nil {
		return err
	}
	defer e.close()
	p, err := startTokengate(e.bin, e.config(false))
	if err != nil {
		return err
	}
	defer p.stop()
	tok := e.mintMany(e.idp.Signer(), 1)[0]
	rss0 := p.memKB("VmRSS")
	var deniedClosed, allowedOpen, headerConns, dialErrs atomic.Int64
	allowedN := int(float64(n) * allowedShare)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range n {
		conn, err := net.Dial("tcp", p.addr)
		if err != nil {
			dialErrs.Add(1)
			continue
		}
		allowed := i < allowedN
		denied := !allowed && i%2 == 0
		switch {
		case allowed:
			_, _ = fmt.Fprintf(conn, "POST /hooks/slow HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer %s\r\nContent-Length: 100000\r\n\r\n", tok)
		case denied:
			_, _ = fmt.Fprintf(conn, "POST /hooks/slow HTTP/1.1\r\nHost: bench\r\nContent-Length: 100000\r\n\r\n")
		default:
			_, _ = fmt.Fprintf(conn, "POST /hooks/slow HTTP/1.1\r\nHost: bench\r\nX-Slow: ")
			headerConns.Add(1)
		}
		wg.Go(func() {
			defer conn.Close()
			if denied {
				_ = conn.SetReadDeadline(time.Now().Add(hold))
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					if _, err := conn.Read(make([]byte, 1)); err == io.EOF {
						deniedClosed.Add(1)
					}
				}
				return
			}
			if allowed {
				allowedOpen.Add(1)
			}
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				case <-t.C:
					if _, err := conn.Write([]byte("x")); err != nil {
						if allowed {
							allowedOpen.Add(-1)
						}
						return
					}
				}
			}
		})
	}
	time.Sleep(hold)
	peak := p.memKB("VmHWM")
	rssHeld := p.memKB("VmRSS")
	goroutines := p.metric("go_goroutines")
	close(stop)
	wg.Wait()
	fmt.Printf("slow connections: %d opened (%d dial errors), held %v\n", n, dialErrs.Load(), hold)
	fmt.Printf("  denied (no token, body announced, never sent): %d answered and closed by tokengate at once\n", deniedClosed.Load())
	fmt.Printf("  header trickle (1 byte/s): %d opened; ReadHeaderTimeout (10s) ends them\n", headerConns.Load())
	fmt.Printf("  allowed (valid token, body 1 byte/s): %d of %d still trickling at the end of the hold\n", allowedOpen.Load(), allowedN)
	fmt.Printf("  tokengate RSS: %.1f MB before, %.1f MB while held, %.1f MB peak; %v goroutines while held\n",
		float64(rss0)/1024, float64(rssHeld)/1024, float64(peak)/1024, goroutines)
	return nil
}
