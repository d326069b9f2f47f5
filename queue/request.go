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
func (q *Queue) request(ctx context.Context, m *Message) (*http.Request, error) {
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
		h["User-Agent"] = noUserAgent // as the reverse proxy: no Go default
	}
	h[HeaderDeliveryID] = []string{m.DeliveryID}
	h[HeaderAttempt] = []string{strconv.Itoa(m.Attempts)}
	q.injectTrace(ctx, h)
	out.Method, out.Proto, out.ProtoMajor, out.ProtoMinor, out.Header = m.Method, "HTTP/1.1", 1, 1, h
	out.Host = "" // the target's, as the reverse proxy sends
	if out.ContentLength = int64(len(m.Body)); len(m.Body) == 0 {
		out.Body, out.GetBody = http.NoBody, noBody
	} else {
		// A NopCloser over a bytes.Reader: net/http then writes the head
		// and a small body in one write, not two.
		body := m.Body
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	return out.WithContext(ctx), nil
}

// noUserAgent keeps Go's default User-Agent off a request.
var noUserAgent = []string{""}

func noBody() (io.ReadCloser, error) { return http.NoBody, nil }
