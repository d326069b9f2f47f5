package listener

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// stallConn gives every write its own deadline, WriteStall from when it
// starts: a client that stops reading fails the write that fills its
// window, and the server closes the connection. Deadlines set from
// outside (the TLS handshake's, a handler's through
// http.ResponseController, the zero one a hijack sets) still apply: a
// write gets the earlier of the two.
type stallConn struct {
	net.Conn
	stall time.Duration

	mu    sync.Mutex
	ext   time.Time // the write deadline set from outside, zero for none
	armed time.Time // the deadline the last write started with
}

func (c *stallConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	dl := time.Now().Add(c.stall)
	if !c.ext.IsZero() && c.ext.Before(dl) {
		dl = c.ext
	}
	c.armed = dl
	err := c.Conn.SetWriteDeadline(dl)
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// SetWriteDeadline records t for the next writes; a write under way keeps
// the earlier of t and its own deadline. Zero lifts t (the next write
// arms its own deadline, so one left on the socket never matters).
func (c *stallConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ext = t
	if t.IsZero() {
		return nil
	}
	if !c.armed.IsZero() && c.armed.Before(t) {
		t = c.armed
	}
	return c.Conn.SetWriteDeadline(t)
}

// SetDeadline sets the read deadline and, as SetWriteDeadline does, the
// write deadline.
func (c *stallConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// CloseWrite half-closes a TCP connection (the server does before closing
// one it refused, so the client reads the answer).
func (c *stallConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// stallWriter times an HTTP/2 stream's writes. A client that stops
// reading one stream shuts that stream's flow-control window while the
// connection stays busy with others, so no connection deadline fires;
// each Write and Flush that blocks longer than WriteStall resets the
// stream instead (a deadline in the past makes the HTTP/2 server reset
// it at once, which ends the blocked write).
type stallWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
}

func (w *stallWriter) timed(f func()) {
	t := time.AfterFunc(w.stall, func() { _ = w.rc.SetWriteDeadline(time.Unix(1, 0)) })
	f()
	t.Stop()
}

func (w *stallWriter) WriteHeader(code int) { w.timed(func() { w.ResponseWriter.WriteHeader(code) }) }

func (w *stallWriter) Write(p []byte) (n int, err error) {
	w.timed(func() { n, err = w.ResponseWriter.Write(p) })
	return n, err
}

// Flush lets streamed answers through, timed like a write.
func (w *stallWriter) Flush() {
	w.timed(func() { _ = w.rc.Flush() })
}

// Unwrap gives http.ResponseController the stream's writer.
func (w *stallWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// finish bounds the stream's last write, which the HTTP/2 server makes
// after the handler returns; the deadline ends with the stream.
func (w *stallWriter) finish() {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.stall))
}
