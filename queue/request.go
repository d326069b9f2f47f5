package queue

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
)

// request rebuilds m for the target, as the reverse proxy would send it.
// The message is this attempt's own (decoded for it, or handed over by
// the store): its header map becomes the request's, with the gate's own
// headers set in it; what settling writes back is progress only.
func (q *Queue) request(ctx context.Context, m *Message) *http.Request {
	out := &http.Request{URL: &url.URL{Path: m.Path, RawQuery: m.Query}}
	(&httputil.ProxyRequest{In: out, Out: out}).SetURL(q.target.Load())
	h := m.Header
	if h == nil {
		h = make(http.Header, 4)
	}
	for k := range h {
		if len(k) == len(HeaderDeliveryID) || len(k) == len(HeaderAttempt) {
			if n := strings.ReplaceAll(k, "_", "-"); strings.EqualFold(n, HeaderDeliveryID) || strings.EqualFold(n, HeaderAttempt) {
				delete(h, k) // only the gate says these
			}
		}
	}
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = []string{""} // as the reverse proxy: no Go default
	}
	vs := []string{m.DeliveryID, strconv.Itoa(m.Attempts)} // one allocation for both
	h[HeaderDeliveryID], h[HeaderAttempt] = vs[:1:1], vs[1:]
	q.injectTrace(ctx, h)
	out.Method, out.Header = m.Method, h                         // Host stays empty: the target's, as the reverse proxy sends
	out.Proto, out.ProtoMajor, out.ProtoMinor = "HTTP/1.1", 1, 1 // as http.NewRequest (an Expect: 100-continue is honoured)
	if out.ContentLength = int64(len(m.Body)); len(m.Body) == 0 {
		out.Body, out.GetBody = http.NoBody, noBody
	} else {
		// A NopCloser over a bytes.Reader: net/http then writes the head
		// and a small body in one write, not two.
		body := m.Body
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	return out.WithContext(ctx)
}

func noBody() (io.ReadCloser, error) { return http.NoBody, nil }
