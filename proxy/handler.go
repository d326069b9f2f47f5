package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/verifier"
)

// Verifier is what the handler needs from token verification.
type Verifier interface {
	Verify(ctx context.Context, token string) (*verifier.Principal, error)
}

// Observer receives one call per request, for metrics. Labels are bounded:
// a route name from the config, a Decision… constant and a status code.
type Observer interface {
	ObserveRequest(route, decision string, status int, elapsed time.Duration)
	ObserveUpstream(elapsed time.Duration)
}

// Options are the handler's collaborators; all optional.
type Options struct {
	// Logger receives the access log and errors. Default: no logging.
	Logger *zap.Logger
	// Observer receives request metrics.
	Observer Observer
	// Transport replaces the upstream transport built from the config.
	Transport http.RoundTripper
	// Now is the clock used for latencies; default time.Now.
	Now func() time.Time
	// Forwarding says whose X-Forwarded-* to believe; default: nobody's.
	Forwarding *Forwarding
}

// Handler is tokengate's public http.Handler: route, bearer token, verify,
// policy, header hygiene, reverse proxy.
type Handler struct {
	routes     []*route
	verifier   Verifier
	rp         *httputil.ReverseProxy
	target     *url.URL
	realm      string
	retryAfter string
	maxBody    int64
	headers    headerPolicy
	log        *zap.Logger
	obs        Observer
	now        func() time.Time
	fwd        *Forwarding
}

// New builds the handler for a validated configuration.
func New(cfg *config.Config, v Verifier, o Options) (*Handler, error) {
	target, err := url.Parse(cfg.Upstream.URL)
	if err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Transport == nil {
		t, err := NewTransport(cfg.Upstream)
		if err != nil {
			return nil, err
		}
		o.Transport = t
	}
	if o.Forwarding == nil {
		f, err := NewForwarding(cfg.TrustedProxies)
		if err != nil {
			return nil, err
		}
		o.Forwarding = f
	}
	h := &Handler{
		routes:     compileRoutes(cfg),
		verifier:   v,
		target:     target,
		realm:      quotable(cfg.Realm),
		retryAfter: retryAfterValue(cfg.RetryAfter.D().Seconds()),
		maxBody:    int64(cfg.Upstream.MaxBodySize),
		headers:    newHeaderPolicy(cfg.Headers),
		log:        o.Logger,
		obs:        o.Observer,
		now:        o.Now,
		fwd:        o.Forwarding,
	}
	h.rp = &httputil.ReverseProxy{
		Rewrite:      h.rewrite,
		Transport:    o.Transport,
		BufferPool:   newBufferPool(),
		ErrorHandler: h.upstreamFailed,
		ErrorLog:     zap.NewStdLog(o.Logger.Named("reverseproxy")),
	}
	return h, nil
}

// state travels with a request from ServeHTTP to Rewrite and ErrorHandler.
type state struct {
	route     *route
	principal *verifier.Principal
	path      string
	err       error
	upstream  time.Time
}

type stateKey struct{}

// ServeHTTP implements the request path of DESIGN.md.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := h.now()
	rec := &recorder{ResponseWriter: w}
	st := &state{}
	token, decision := h.serve(rec, r, st)
	elapsed := h.now().Sub(start)
	status := rec.status
	if st.err != nil && errors.Is(st.err, errClientGone) {
		status = 499
	}
	name := ""
	if st.route != nil {
		name = st.route.name
	}
	if h.obs != nil {
		h.obs.ObserveRequest(name, decision, status, elapsed)
	}
	if ce := h.log.Check(zapcore.InfoLevel, "request"); ce != nil {
		fields := []zap.Field{
			zap.String("method", r.Method),
			zap.String("path", st.path),
			zap.String("route", name),
			zap.Int("status", status),
			zap.String("decision", decision),
			zap.Duration("latency", elapsed),
			zap.String("client", h.fwd.ClientIP(r)),
		}
		if p := st.principal; p != nil {
			fields = append(fields, zap.String("sub", p.Subject), zap.String("client_id", p.ClientID), zap.String("issuer", p.Source))
		}
		if token != "" {
			fields = append(fields, zap.String("token_id", TokenID(token)))
		}
		if st.err != nil {
			fields = append(fields, zap.String("reason", st.err.Error()))
		}
		ce.Write(fields...)
	}
}

// serve decides and answers; it returns the token (for the log's token id)
// and the decision.
func (h *Handler) serve(w *recorder, r *http.Request, st *state) (string, string) {
	deny := func(err error, rt *route) (string, string) {
		st.err = err
		a := classify(err)
		h.writeAnswer(w, a, rt)
		return "", a.decision
	}
	if strings.ContainsAny(r.URL.Path, "\\\x00") || containsFold(r.URL.RawPath, "%2f") || containsFold(r.URL.RawPath, "%5c") {
		st.path = "(rejected)"
		return deny(errEncodedSlash, nil)
	}
	st.path = cleanPath(r.URL.Path)
	rt := match(h.routes, r.Method, r.Host, st.path)
	if rt == nil {
		return deny(errNoRoute, nil)
	}
	st.route = rt
	if r.URL.RawQuery != "" && r.URL.Query().Has("access_token") {
		return deny(errTokenInQuery, rt)
	}
	if rt.public {
		return "", h.forward(w, r, st, DecisionPublic)
	}
	if err := rt.allowClientCert(r.TLS); err != nil {
		return deny(err, rt)
	}
	token, err := bearerToken(r.Header)
	if err != nil {
		return deny(err, rt)
	}
	p, err := h.verifier.Verify(r.Context(), token)
	if err != nil {
		_, d := deny(err, rt)
		return token, d
	}
	st.principal = p
	if err := rt.allow(p); err != nil {
		_, d := deny(err, rt)
		return token, d
	}
	return token, h.forward(w, r, st, DecisionAllow)
}

func (h *Handler) forward(w *recorder, r *http.Request, st *state, decision string) string {
	if r.ContentLength > h.maxBody {
		st.err = errTooLarge
		h.writeAnswer(w, classify(errTooLarge), st.route)
		return decision
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(w, r.Body, h.maxBody)
	}
	st.upstream = h.now()
	h.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), stateKey{}, st)))
	if h.obs != nil && st.err == nil {
		h.obs.ObserveUpstream(h.now().Sub(st.upstream))
	}
	return decision
}

// rewrite builds the outbound request: the cleaned path, hygienic headers,
// identity headers, X-Forwarded-*.
func (h *Handler) rewrite(pr *httputil.ProxyRequest) {
	st := pr.In.Context().Value(stateKey{}).(*state)
	pr.Out.URL.Path = st.path
	pr.Out.URL.RawPath = ""
	pr.SetURL(h.target)
	h.headers.apply(pr.Out.Header, st.principal, st.route.keepAuth)
	h.headers.clientCert(pr.Out.Header, pr.In.TLS)
	h.fwd.apply(pr)
}

func (h *Handler) upstreamFailed(w http.ResponseWriter, r *http.Request, err error) {
	st, _ := r.Context().Value(stateKey{}).(*state)
	e := upstreamError(err)
	if st != nil {
		st.err = e
	}
	if !errors.Is(e, errClientGone) {
		h.log.Warn("upstream request failed", zap.Error(err))
	}
	var rt *route
	if st != nil {
		rt = st.route
	}
	h.writeAnswer(w, classify(e), rt)
}

// TokenID is the short token fingerprint for logs: the first 8 hex
// characters of its SHA-256. The token itself is never logged.
func TokenID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:4])
}

func containsFold(s, sub string) bool {
	if s == "" {
		return false
	}
	return strings.Contains(strings.ToLower(s), sub)
}

// recorder remembers the status for the access log. Unwrap lets
// http.ResponseController reach the real writer (flushing, deadlines).
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
