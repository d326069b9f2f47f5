package listener

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

var short = Timeouts{ReadHeader: 200 * time.Millisecond, Idle: 300 * time.Millisecond, WriteStall: 300 * time.Millisecond}

// TestConnectionBounds: a connection that sends nothing (no request head,
// no TLS handshake), half a request head, or nothing after an answer is
// closed after ReadHeader (Idle); a request head over MaxHeaderBytes gets
// 431.
func TestConnectionBounds(t *testing.T) {
	ca := newTestCA(t)
	setup, _ := ca.setup(t)
	plain := started(t, Options{Name: "plain", Handler: text("ok"), Timeouts: short, MaxHeaderBytes: 8 << 10})
	secure := started(t, Options{Name: "tls", Handler: text("ok"), Timeouts: short, TLS: setup})
	for _, tc := range []struct {
		name string
		l    *Listener
		send string
	}{
		{"silent", plain, ""},
		{"no TLS handshake", secure, ""},
		{"half a head", plain, "GET / HTTP/1.1\r\nHost: localhost\r\n"},
		{"idle keep-alive", plain, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", tc.l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, _ = io.WriteString(c, tc.send)
			if !closedWithin10s(c) {
				t.Fatal("the connection was still open after 10s")
			}
		})
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+plain.Addr().String(), nil)
	req.Header.Set("X-Big", strings.Repeat("a", 16<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("a 16 KiB head with MaxHeaderBytes 8 KiB: %d, want 431", resp.StatusCode)
	}
}

// endlessWriter writes until a write fails, then reports the failure.
func endlessWriter(failed chan<- error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 32<<10)
		for range 1 << 15 { // at most 1 GiB
			if _, err := w.Write(buf); err != nil {
				failed <- err
				return
			}
		}
		failed <- nil
	}
}

// TestClientThatNeverReads: HTTP/1.1, a request whose answer the client
// never reads: once the socket buffers are full the handler's write
// fails after WriteStall, and the connection is closed.
func TestClientThatNeverReads(t *testing.T) {
	failed := make(chan error, 1)
	l := started(t, Options{Name: "test", Handler: endlessWriter(failed), Timeouts: short})
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
	if err := within(t, failed, "the handler's write to fail"); err == nil {
		t.Fatal("the whole answer was written to a client that read nothing")
	}
}

// TestHijackedConnectionThatNeverReads: a hijacked connection (a
// WebSocket tunnel) whose client stops reading is bounded the same way.
func TestHijackedConnectionThatNeverReads(t *testing.T) {
	failed := make(chan error, 1)
	l := started(t, Options{Name: "test", Timeouts: short, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			failed <- nil
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		buf := make([]byte, 32<<10)
		for range 1 << 15 {
			if _, err := conn.Write(buf); err != nil {
				failed <- err
				return
			}
		}
		failed <- nil
	})})
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	if err := within(t, failed, "the tunnel's write to fail"); err == nil {
		t.Fatal("the whole stream was written to a client that read nothing")
	}
}

// TestPausesAndLongStreamsAreNotCut: WriteStall is no WriteTimeout: an
// answer streamed for several times WriteStall, with pauses between
// writes longer than WriteStall, reaches a client that reads, over
// HTTP/1.1 and HTTP/2.
func TestPausesAndLongStreamsAreNotCut(t *testing.T) {
	ca := newTestCA(t)
	setup, _ := ca.setup(t)
	l := started(t, Options{Name: "test", TLS: setup, Timeouts: short, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := range 4 {
			_, _ = io.WriteString(w, strings.Repeat("x", 1000)+"\n")
			http.NewResponseController(w).Flush()
			if i < 3 {
				time.Sleep(2 * short.WriteStall)
			}
		}
	})})
	for _, h2 := range []bool{false, true} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool()}, ForceAttemptHTTP2: h2}
		if !h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		resp, err := (&http.Client{Transport: tr, Timeout: 20 * time.Second}).Get("https://" + l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || len(b) != 4*1001 {
			t.Errorf("h2=%v: %d bytes, %v; want the whole stream", h2, len(b), err)
		}
	}
}

// TestHTTP2StreamThatNeverReads: an HTTP/2 client that opens a stream
// with a flow-control window of 0 and never grants more stops that
// stream's writes while its connection stays healthy, so no connection
// deadline fires. The stream is reset after WriteStall and the handler's
// write fails.
func TestHTTP2StreamThatNeverReads(t *testing.T) {
	ca := newTestCA(t)
	setup, _ := ca.setup(t)
	failed := make(chan error, 1)
	l := started(t, Options{Name: "test", TLS: setup, Timeouts: short, Handler: endlessWriter(failed)})
	conn, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: ca.pool(), NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, bufio.NewReader(conn))
	if err := fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0}); err != nil {
		t.Fatal(err)
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "localhost"}, {":path", "/"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	reset := make(chan bool, 1)
	go func() {
		_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				reset <- false
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					_ = fr.WriteSettingsAck()
				}
			case *http2.RSTStreamFrame:
				if f.StreamID == 1 {
					reset <- true
					return
				}
			}
		}
	}()
	if err := within(t, failed, "the stream's write to fail"); err == nil {
		t.Fatal("the whole answer was written to a stream with no window")
	}
	if !within(t, reset, "RST_STREAM") {
		t.Fatal("the connection ended instead of the stream being reset")
	}
}
