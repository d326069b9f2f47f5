package queue

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// TestAttemptFramesTheBodyAsStored: an attempt sends the stored body with
// its exact length (an empty one as Content-Length 0 or none, never
// chunked), and a request rebuilt for a retry on another connection
// (GetBody) sends the same bytes.
func TestAttemptFramesTheBodyAsStored(t *testing.T) {
	type seen struct {
		length int64
		te     []string
		body   string
	}
	var mu sync.Mutex
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.ContentLength, r.TransferEncoding, string(b)})
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	target, _ := url.Parse(srv.URL)
	s, err := OpenFile(FileOptions{Dir: t.TempDir()})
	must(t, err)
	t.Cleanup(func() { s.Close() })
	q, err := New(s, Options{Routes: []RouteOptions{{Name: "gh"}}, Target: target})
	must(t, err)
	for _, tc := range []struct {
		name, method, body string
	}{
		{"a body", http.MethodPost, `{"a":1}`},
		{"an empty POST", http.MethodPost, ""},
		{"a GET", http.MethodGet, ""},
		{"a binary body", http.MethodPut, "\x00\xff\r\n0\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			got = nil
			mu.Unlock()
			m := &Message{Route: "gh", Method: tc.method, Path: "/p", Body: []byte(tc.body), Header: http.Header{}}
			if tc.body == "" {
				m.Body = nil
			}
			must(t, q.Enqueue(context.Background(), m))
			if n := deliverDue(t, q); n != 1 {
				t.Fatalf("attempted %d", n)
			}
			req := q.request(context.Background(), &Message{Method: tc.method, Path: "/p", Body: []byte(tc.body), DeliveryID: "d"})
			rb, err := req.GetBody()
			must(t, err)
			again, _ := io.ReadAll(rb)
			if string(again) != tc.body {
				t.Fatalf("GetBody gave %q, want %q", again, tc.body)
			}
			resp, err := http.DefaultTransport.RoundTrip(req)
			must(t, err)
			resp.Body.Close()
			mu.Lock()
			defer mu.Unlock()
			if len(got) != 2 {
				t.Fatalf("receiver got %d requests, want 2", len(got))
			}
			for _, g := range got {
				if g.length != int64(len(tc.body)) || len(g.te) != 0 || g.body != tc.body {
					t.Fatalf("receiver got length %d, transfer-encoding %v, body %q; want %d, none, %q", g.length, g.te, g.body, len(tc.body), tc.body)
				}
			}
		})
	}
}

// writeCounter counts the writes on the connections it dials.
type writeCounter struct {
	net.Conn
	writes *atomic.Int64
}

func (c writeCounter) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestAttemptSendsHeadAndSmallBodyInOneWrite: an attempt's request head
// and a small body leave in one write (net/http flushes the head on its
// own, a second syscall and packet, for a body it does not know to be in
// memory).
func TestAttemptSendsHeadAndSmallBodyInOneWrite(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
	t.Cleanup(srv.Close)
	target, _ := url.Parse(srv.URL)
	var writes atomic.Int64
	var d net.Dialer
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		return writeCounter{c, &writes}, err
	}}
	t.Cleanup(tr.CloseIdleConnections)
	s, err := OpenFile(FileOptions{Dir: t.TempDir()})
	must(t, err)
	t.Cleanup(func() { s.Close() })
	q, err := New(s, Options{Routes: []RouteOptions{{Name: "gh"}}, Target: target, Transport: tr})
	must(t, err)
	for _, body := range []string{`{"a":1}`, ""} {
		writes.Store(0)
		req := q.request(context.Background(), &Message{Method: http.MethodPost, Path: "/p", Body: []byte(body), DeliveryID: "d", Header: http.Header{}})
		resp, err := tr.RoundTrip(req)
		must(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if n := writes.Load(); n != 1 {
			t.Fatalf("body %q: the request took %d writes, want 1", body, n)
		}
	}
}
