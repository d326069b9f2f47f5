package egress

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Handler defaults.
const (
	DefaultRetryBodyLimit = 1 << 20 // 1 MiB
	// maxDrain bounds reading a refused answer before the retry, so the
	// connection can be reused.
	maxDrain = 64 << 10
)

// msgTooLarge is the cause given with 413.
const msgTooLarge = "the request body exceeds max_body_size"

// Retry outcomes, the "outcome" reported to Observer.Retry.
const (
	RetryDone          = "retried"        // 401 → new token → sent again
	RetryNotReplayable = "not_replayable" // 401, body too large to keep
	RetryThrottled     = "throttled"      // 401, renewals too frequent
	RetryNoToken       = "no_token"       // 401, no new token in time
)

// TokenSource is what a Handler needs from a Source.
type TokenSource interface {
	Token(ctx context.Context) (*Token, error)
	Invalidate(t *Token) bool
}

// Observer receives the Handler's events for metrics. Labels are the
// egress name and fixed sets; never a token or a path.
type Observer interface {
	EgressRequest(egress string, code int)
	EgressRetry(egress, outcome string)
}

// HandlerOptions configure a Handler.
type HandlerOptions struct {
	// Name of the egress entry.
	Name string
	// Upstream is the base URL requests go to: its path is prefixed to
	// the request's, its query merged.
	Upstream *url.URL
	// Tokens supplies the access tokens.
	Tokens TokenSource
	// Transport reaches the upstream. Default http.DefaultTransport.
	Transport http.RoundTripper
	// RetryBodyLimit: bodies up to this size are kept so a request the
	// upstream refused with 401 can be sent again with a new token;
	// larger ones stream and are not retried. Default 1 MiB; negative:
	// never retry a request with a body.
	RetryBodyLimit int64
	// MaxBodySize refuses larger bodies with 413. 0: no limit.
	MaxBodySize int64
	// BodyReadTimeout bounds reading the app's request body, from the end
	// of its head: an app (or anyone reaching the listener) that trickles
	// a body gets 408 after it. 0: no bound.
	BodyReadTimeout time.Duration
	// LoopbackHosts refuses (421) requests whose Host is not localhost or a
	// loopback IP: set it for a loopback listener, so that a web page
	// whose name is re-bound to 127.0.0.1 cannot spend the credentials.
	// Unset (a listener that requires client certificates), the check is
	// still made for a request without a verified client certificate.
	LoopbackHosts bool
	// ForwardedHeaders adds X-Forwarded-For/-Host/-Proto. Default off:
	// the vendor learns nothing about the app's network.
	ForwardedHeaders bool
	// Observer receives request and retry events (optional).
	Observer Observer
	// Logger receives one line per request (no query, no token).
	Logger *zap.Logger
	// Propagator, when set, turns tracing on (tracing.go): the request's
	// server span (made by the gate, continuing the app's trace) gets an
	// upstream span, and the vendor gets our traceparent and none of the
	// app's trace context. nil: trace headers pass as the app sent them,
	// except its baggage, which never leaves.
	Propagator propagation.TextMapPropagator
}

// Handler forwards an application's requests to the upstream with a
// bearer token from its TokenSource. Whatever Authorization the app sent
// is replaced; hop-by-hop headers are removed; Host is the upstream's.
type Handler struct {
	o  HandlerOptions
	rp *httputil.ReverseProxy
}

// NewHandler builds a Handler.
func NewHandler(o HandlerOptions) *Handler {
	if o.Transport == nil {
		o.Transport = http.DefaultTransport
	}
	if o.RetryBodyLimit == 0 {
		o.RetryBodyLimit = DefaultRetryBodyLimit
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	h := &Handler{o: o}
	h.rp = &httputil.ReverseProxy{
		Rewrite:      h.rewrite,
		Transport:    &retryTransport{h: h},
		ErrorHandler: h.proxyError,
		ErrorLog:     zap.NewStdLog(o.Logger),
		BufferPool:   copyBuffers,
	}
	return h
}

// copyBuffers reuses ReverseProxy's 32 KiB copy buffers across requests.
var copyBuffers = &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b *bufferPool) Put(x []byte) { b.p.Put(&x) }

// reqState is what one request carries from ServeHTTP to the transport.
type reqState struct {
	tok     *Token
	replay  []byte // the body, when it can be sent again
	hasBody bool
	bodyErr atomic.Pointer[error] // why reading the app's body failed
	retried string                // retry outcome, for the log
	rec     recorder              // the response writer's status
	fields  [9]zap.Field          // the access-log line's fields
}

type stateKey struct{}

func stateOf(ctx context.Context) *reqState {
	st, _ := ctx.Value(stateKey{}).(*reqState)
	return st
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	st := &reqState{rec: recorder{ResponseWriter: w}}
	h.serve(&st.rec, r, st)
	code := st.rec.code
	if code == 0 {
		code = http.StatusOK
	}
	if h.o.Observer != nil {
		h.o.Observer.EgressRequest(h.o.Name, code)
	}
	if ce := h.o.Logger.Check(zapcore.InfoLevel, "egress request"); ce != nil {
		// The fields live in st: the line's encoding is the only
		// allocation the access log adds. No query, no token.
		fields := append(st.fields[:0], zap.String("egress", h.o.Name), zap.String("method", r.Method),
			zap.String("path", r.URL.Path), zap.Int("status", code), zap.Duration("duration", time.Since(start)))
		if st.retried != "" {
			fields = append(fields, zap.String("retry", st.retried))
		}
		if h.o.Propagator != nil {
			fields = h.traceRequest(r.Context(), st, fields)
		}
		ce.Write(fields...)
	} else if h.o.Propagator != nil {
		h.traceRequest(r.Context(), st, nil)
	}
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, st *reqState) {
	if code, kind, msg := h.screen(r); code != 0 {
		h.writeError(w, code, kind, msg, 0)
		return
	}
	if h.o.MaxBodySize > 0 && r.ContentLength > h.o.MaxBodySize {
		h.writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", msgTooLarge, 0)
		return
	}
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		st.hasBody = true
		if h.o.BodyReadTimeout > 0 {
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(h.o.BodyReadTimeout))
		}
		if h.o.MaxBodySize > 0 {
			r.Body = http.MaxBytesReader(w, r.Body, h.o.MaxBodySize)
		}
		r.Body = &appBody{r.Body, st}
		if h.o.RetryBodyLimit > 0 && r.ContentLength <= h.o.RetryBodyLimit {
			if err := keepBody(r, st, h.o.RetryBodyLimit); err != nil {
				h.bodyError(w, err)
				return
			}
		}
	}
	// The token is taken after a kept body is read: the app may send it
	// slowly, and the request must leave with the token current then.
	var err error
	if st.tok, err = h.o.Tokens.Token(r.Context()); err != nil {
		if r.Context().Err() != nil {
			return // the app went away
		}
		retry := time.Second
		var ue *UnavailableError
		if errors.As(err, &ue) {
			retry = ue.RetryAfter
		}
		h.writeError(w, http.StatusServiceUnavailable, "token_unavailable", err.Error(), retry)
		return
	}
	ctx, span := h.upstreamSpan(r.Context())
	h.rp.ServeHTTP(w, r.WithContext(context.WithValue(ctx, stateKey{}, st)))
	endUpstreamSpan(span, st.rec.code)
}

// rewrite points the request at the upstream and sets the token.
func (h *Handler) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(h.o.Upstream)
	if h.o.ForwardedHeaders {
		pr.SetXForwarded()
	}
	st := stateOf(pr.In.Context())
	pr.Out.Header.Set("Authorization", "Bearer "+st.tok.Value)
	h.injectTrace(pr)
	if st.replay != nil {
		body := st.replay
		pr.Out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
}

// retryTransport sends the request and, when the upstream answers 401,
// drops the token, gets a new one and sends the request once more if
// its body was kept. It never retries twice.
type retryTransport struct{ h *Handler }

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	next := t.h.o.Transport
	resp, err := next.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	st := stateOf(req.Context())
	outcome := t.retryable(req, st)
	if outcome != RetryDone {
		t.h.observeRetry(st, outcome)
		return resp, nil
	}
	tok, terr := t.h.o.Tokens.Token(req.Context())
	if terr != nil {
		// The refused token is dropped and no other can be had: the app
		// gets 503 with the cause (e.g. a revoked grant), not the 401.
		t.h.observeRetry(st, RetryNoToken)
		_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)
		resp.Body.Close()
		return nil, terr
	}
	_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)
	resp.Body.Close()
	out := req.Clone(req.Context())
	out.Header.Set("Authorization", "Bearer "+tok.Value)
	if st.hasBody {
		out.Body, _ = out.GetBody()
	}
	t.h.observeRetry(st, RetryDone)
	return next.RoundTrip(out)
}

// retryable decides whether a refused request is sent again.
func (t *retryTransport) retryable(req *http.Request, st *reqState) string {
	if st.hasBody && (st.replay == nil || req.GetBody == nil) {
		return RetryNotReplayable
	}
	if !t.h.o.Tokens.Invalidate(st.tok) {
		return RetryThrottled
	}
	return RetryDone
}

func (h *Handler) observeRetry(st *reqState, outcome string) {
	st.retried = outcome
	if h.o.Observer != nil {
		h.o.Observer.EgressRetry(h.o.Name, outcome)
	}
}

// proxyError answers when the upstream could not be reached.
func (h *Handler) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if st := stateOf(r.Context()); st != nil {
		if be := st.bodyErr.Load(); be != nil && !errors.Is(*be, context.Canceled) {
			h.bodyError(w, *be) // the app's body failed, not the upstream
			return
		}
	}
	if r.Context().Err() != nil && !errors.Is(r.Context().Err(), context.DeadlineExceeded) {
		w.WriteHeader(499) // the app went away; nobody reads this
		return
	}
	var mbe *http.MaxBytesError
	var ue *UnavailableError
	switch {
	case errors.As(err, &mbe):
		h.writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", msgTooLarge, 0)
	case errors.As(err, &ue):
		h.writeError(w, http.StatusServiceUnavailable, "token_unavailable", ue.Error(), ue.RetryAfter)
	case isTimeout(err):
		h.writeError(w, http.StatusGatewayTimeout, "upstream_timeout", "the upstream did not answer in time", 0)
	default:
		h.o.Logger.Warn("egress upstream unreachable", zap.String("egress", h.o.Name), zap.String("upstream", h.o.Upstream.Host), zap.Error(err))
		h.writeError(w, http.StatusBadGateway, "upstream_unreachable", "the upstream could not be reached", 0)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// errorBody is the JSON an egress answers with when it cannot forward.
type errorBody struct {
	Error  string `json:"error"`
	Egress string `json:"egress"`
	Cause  string `json:"cause"`
}

func (h *Handler) writeError(w http.ResponseWriter, code int, kind, cause string, retry time.Duration) {
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "no-store")
	if retry > 0 {
		hd.Set("Retry-After", strconv.Itoa(int(math.Ceil(retry.Seconds()))))
	}
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(errorBody{Error: kind, Egress: h.o.Name, Cause: cause})
}

// recorder remembers the status written.
type recorder struct {
	http.ResponseWriter
	code int
}

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Flush lets streamed answers through.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
