package issuer

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// answerBound is how long a test waits for the gate to answer or close a
// connection whose body stalls: generous, far above the 300ms deadline.
const answerBound = 15 * time.Second

// stalledBodies are token requests whose body trickles or never comes.
var stalledBodies = []struct {
	name string
	head string
	// feed sends (part of) the body; it stops when stop closes.
	feed func(c net.Conn, stop <-chan struct{})
}{
	{"headers, then nothing", "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n",
		func(net.Conn, <-chan struct{}) {}},
	{"a byte every 50ms", "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n",
		func(c net.Conn, stop <-chan struct{}) { trickle(c, stop, "grant_type=client_credentials&client_id=") }},
	{"chunked, never finished", "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n",
		func(c net.Conn, stop <-chan struct{}) { _, _ = io.WriteString(c, "2\r\n{\"\r\n") }},
	{"multipart, trickled", "Content-Type: multipart/form-data; boundary=X\r\nContent-Length: 500\r\n",
		func(c net.Conn, stop <-chan struct{}) {
			_, _ = io.WriteString(c, "--X\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\n")
			trickle(c, stop, "client_credentials\r\n")
		}},
}

// trickle writes s a byte every 50ms, then keeps the connection silent.
func trickle(c net.Conn, stop <-chan struct{}, s string) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for i := 0; i < len(s); i++ {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if _, err := c.Write([]byte{s[i]}); err != nil {
			return
		}
	}
}

func TestTokenBodyThatStallsIsAnsweredOrClosedWithinTheDeadline(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.BodyReadTimeout = 300 * time.Millisecond })
	for _, c := range stalledBodies {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", f.http.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(answerBound))
			if _, err := io.WriteString(conn, "POST /oauth2/token HTTP/1.1\r\nHost: x\r\n"+c.head+"\r\n"); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() { c.feed(conn, stop) })
			defer wg.Wait()
			defer close(stop)
			start := time.Now()
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				t.Fatalf("neither answered nor closed within %v: the stalled body holds the connection", answerBound)
			case err != nil: // closed: also bounded
				t.Logf("closed after %v: %v", time.Since(start), err)
			default:
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusRequestTimeout || !resp.Close {
					t.Fatalf("answer %d (Connection: close %v); want 408 and close", resp.StatusCode, resp.Close)
				}
				// The connection is let go: nothing more comes, not even
				// after the server would drain the rest of the body.
				if _, err := conn.Read(make([]byte, 1)); err == nil || errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("connection still open after the 408: %v", err)
				}
			}
		})
	}
}

func TestCheckingTheSecretMayOutlastTheBodyDeadline(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.BodyReadTimeout = 200 * time.Millisecond; o.MaxConcurrentHashChecks = 1 })
	// The body is in at once; the bcrypt slot is busy for well past the
	// body deadline. The request must still get its token: the deadline
	// bounds the body, not the wait for the hash.
	if err := f.srv.hashSem.Acquire(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	done := make(chan reply, 1)
	go func() {
		done <- f.post(t, formCT, form("grant_type", "client_credentials"), "Authorization", basic("aftership", testSecret))
	}()
	time.Sleep(time.Second)
	f.srv.hashSem.Release(1)
	select {
	case r := <-done:
		if r.status != http.StatusOK {
			t.Fatalf("a request whose body arrived in time got %d %v", r.status, r.body)
		}
	case <-time.After(answerBound):
		t.Fatalf("no answer within %v", answerBound)
	}
}

// deadlineSpy records the write deadlines set on the real writer.
type deadlineSpy struct {
	http.ResponseWriter
	mu     sync.Mutex
	writes []time.Time
}

func (d *deadlineSpy) SetWriteDeadline(t time.Time) error {
	d.mu.Lock()
	d.writes = append(d.writes, t)
	d.mu.Unlock()
	return http.NewResponseController(d.ResponseWriter).SetWriteDeadline(t)
}

func (d *deadlineSpy) Unwrap() http.ResponseWriter { return d.ResponseWriter }

func TestEveryAnswerIsWrittenUnderAWriteDeadline(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.WriteTimeout = 5 * time.Second })
	var mu sync.Mutex
	var spies []*deadlineSpy
	f.http.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		spy := &deadlineSpy{ResponseWriter: w}
		mu.Lock()
		spies = append(spies, spy)
		mu.Unlock()
		f.srv.ServeHTTP(spy, r)
	})
	requests := []struct {
		name string
		send func()
	}{
		{"token issued", func() {
			f.post(t, formCT, form("grant_type", "client_credentials"), "Authorization", basic("aftership", testSecret))
		}},
		{"client refused", func() {
			f.post(t, formCT, form("grant_type", "client_credentials"), "Authorization", basic("aftership", "nope"))
		}},
		{"JWKS", func() {
			resp, err := http.Get(f.http.URL + "/.well-known/jwks.json")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}},
		{"unknown path", func() {
			resp, err := http.Get(f.http.URL + "/nope")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}},
	}
	for _, c := range requests {
		mu.Lock()
		spies = nil
		mu.Unlock()
		before := time.Now()
		c.send()
		mu.Lock()
		if len(spies) != 1 || len(spies[0].writes) == 0 {
			t.Errorf("%s: answered without a write deadline", c.name)
		} else if d := spies[0].writes[len(spies[0].writes)-1]; d.Before(before) || d.After(time.Now().Add(5*time.Second)) {
			t.Errorf("%s: write deadline %v, want within WriteTimeout of the answer", c.name, d)
		}
		mu.Unlock()
	}
}

func TestTokenBodyInTimeStillWorksOverOneConnection(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.BodyReadTimeout = 300 * time.Millisecond })
	// Keep-alive: the deadline of one request never cuts the next one.
	for range 3 {
		r := f.post(t, formCT, strings.NewReader("grant_type=client_credentials"), "Authorization", basic("aftership", testSecret))
		if r.status != http.StatusOK {
			t.Fatalf("%d %v", r.status, r.body)
		}
		time.Sleep(400 * time.Millisecond)
	}
}

func TestRefusedTokenRequestDoesNotWaitForItsBody(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.PerIPRate, o.PerIPBurst = 0.01, 1 })
	f.post(t, formCT, form("grant_type", "client_credentials")) // spends the address's only token
	conn, err := net.Dial("tcp", f.http.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(answerBound))
	// The body never comes; the 429 needs none of it, and the connection
	// must not wait for it (the read deadline is the default 60s).
	_, _ = io.WriteString(conn, "POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusTooManyRequests || !resp.Close {
		t.Fatalf("answer %d (Connection: close %v); want 429 and close", resp.StatusCode, resp.Close)
	}
	var ne net.Error
	if _, err := br.ReadByte(); err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection held after the refusal: %v", err)
	}
}

// plainWriter hides the server's writer: no Unwrap, so no deadlines.
type plainWriter struct{ http.ResponseWriter }

func TestTokenEndpointRefusesToReadABodyItCannotBound(t *testing.T) {
	f := newFixture(t, nil)
	f.http.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.srv.ServeHTTP(plainWriter{w}, r)
	})
	r := f.post(t, formCT, form("grant_type", "client_credentials"), "Authorization", basic("aftership", testSecret))
	if r.status != http.StatusInternalServerError || r.body["error"] != "server_error" {
		t.Fatalf("%d %v; want 500 server_error", r.status, r.body["error"])
	}
}
