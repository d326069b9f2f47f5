package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/verifier"
)

// Verifier is what the handler needs from token verification: verify a
// token with one of the route's issuers (nil: any configured issuer).
// *verifier.Cache implements it.
type Verifier interface {
	VerifyFor(ctx context.Context, token string, issuers []string) (*verifier.Principal, error)
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
	// Signatures holds, for each of cfg.Routes in order, the route's
	// signed-webhook verifier (nil for a route without signature); every
	// route with a signature policy must have one.
	Signatures []SignatureVerifier
	// Queue stores the requests of queued routes (queued.go); required then.
	Queue Enqueuer
	// RateLimits holds, for each of cfg.Routes in order, the limiter of
	// the route's rate_limit (nil entries, or a short list: an in-memory
	// limiter of the route's own).
	RateLimits []RateLimiter
	// Propagator, when set, turns tracing on (tracing.go): the server span
	// in each request's context is named after its route, forwarded
	// requests get an upstream span, and the receiver gets our W3C trace
	// context in place of the sender's. nil: trace headers pass as sent.
	Propagator propagation.TextMapPropagator
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
	bodyRead   time.Duration
	headers    headerPolicy
	log        *zap.Logger
	storeWarn  *storeWarning
	obs        Observer
	now        func() time.Time
	fwd        *Forwarding
	queued     queuedRoutes
	prop       propagation.TextMapPropagator // nil: tracing off
	signedLimits
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
	routes := compileRoutes(cfg)
	compileLimits(cfg, routes, o.RateLimits)
	for i, r := range cfg.Routes {
		if r.Signature == nil {
			continue
		}
		if i >= len(o.Signatures) || o.Signatures[i] == nil {
			return nil, fmt.Errorf("proxy: route %q has a signature policy but no verifier", r.Name)
		}
		routes[i].sig = o.Signatures[i]
	}
	h := &Handler{
		routes:       routes,
		verifier:     v,
		target:       target,
		realm:        quotable(cfg.Realm),
		retryAfter:   retryAfterValue(cfg.RetryAfter.D().Seconds()),
		maxBody:      int64(cfg.Upstream.MaxBodySize),
		bodyRead:     cfg.BodyReadTimeout.D(),
		headers:      newHeaderPolicy(cfg.Headers),
		log:          o.Logger,
		storeWarn:    newStoreWarning(),
		obs:          o.Observer,
		now:          o.Now,
		fwd:          o.Forwarding,
		prop:         o.Propagator,
		signedLimits: newSignedLimits(cfg),
	}
	if h.queued, err = compileQueued(cfg, routes, o.Queue); err != nil {
		return nil, err
	}
	h.rp = &httputil.ReverseProxy{
		Rewrite:        h.rewrite,
		ModifyResponse: h.modifyResponse,
		Transport:      o.Transport,
		BufferPool:     newBufferPool(),
		ErrorHandler:   h.upstreamFailed,
		ErrorLog:       zap.NewStdLog(o.Logger.Named("reverseproxy")),
	}
	return h, nil
}

// state travels with a request from ServeHTTP to Rewrite and ErrorHandler.
type state struct {
	route     *route
	principal *verifier.Principal
	client    string // the resolved client address (Forwarding.ClientIP)
	path      string
	err       error
	upstream  time.Time
	upgrade   string // the protocol the request asks to switch to, "" for none
	upgraded  bool   // the receiver answered 101 and the tunnel ran
	bodyErr   atomic.Pointer[error]
	body      body // the wrapped request body (kept here: no allocation)
	delivery       // a verified signed message's delivery (signed.go)
	// upstreamStatus is the receiver's status (0: no answer).
	upstreamStatus int
	upSpan         trace.Span    // the upstream client span, nil unless sampled
	fields         [14]zap.Field // the access-log line's fields
}

// body records why reading the sender's body failed (read by the
// transport's goroutine), so the answer names the sender's fault, not the
// receiver's.
type body struct {
	io.ReadCloser
	st *state
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.st.bodyErr.CompareAndSwap(nil, &err)
	}
	return n, err
}

type stateKey struct{}

// ServeHTTP runs the request path described in the package documentation.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := h.now()
	rec := &recorder{ResponseWriter: w}
	st := &state{}
	token, decision := h.serve(rec, r, st)
	elapsed := h.now().Sub(start)
	status := rec.status
	if st.upgraded {
		status = http.StatusSwitchingProtocols // written on the hijacked connection, not through rec
	}
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
	h.accessLog(r, st, token, name, decision, status, elapsed)
}

// serve decides and answers; it returns the token (for the log's token id)
// and the decision.
func (h *Handler) serve(w *recorder, r *http.Request, st *state) (string, string) {
	deny := func(err error, rt *route) (string, string) {
		st.err = err
		a := classify(err)
		bodyPending := r.ContentLength != 0
		if bodyPending && r.ProtoMajor == 1 {
			w.Header().Set("Connection", "close")
		}
		if ra := retryAfterOf(err); ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		h.writeAnswer(w, a, rt)
		if bodyPending {
			// Never wait for a body that will not be forwarded: without
			// this the server drains up to 256 KiB of it, at the
			// sender's pace, before it lets the connection go.
			_ = http.NewResponseController(w).SetReadDeadline(time.Unix(1, 0))
		}
		return "", a.decision
	}
	var err error
	if st.client, err = h.fwd.ClientIP(r); err != nil {
		st.path = cleanPath(r.URL.Path)
		return deny(err, nil)
	}
	if err := checkPath(r.URL); err != nil {
		st.path = "(rejected)"
		return deny(err, nil)
	}
	st.path = cleanPath(r.URL.Path)
	rt := match(h.routes, r.Method, r.Host, st.path)
	if rt == nil {
		return deny(errNoRoute, nil)
	}
	st.route = rt
	if r.URL.RawQuery != "" && tokenInQuery(r.URL.RawQuery) {
		return deny(errTokenInQuery, rt)
	}
	st.upgrade = upgradeOf(r.Header)
	if err := rt.allowUpgrade(st.upgrade); err != nil {
		return deny(err, rt)
	}
	if rt.public {
		if err := h.limit(r, st); err != nil {
			return deny(err, rt)
		}
		return "", h.forward(w, r, st, DecisionPublic)
	}
	if err := rt.allowClientCert(r.TLS); err != nil {
		return deny(err, rt)
	}
	bearer, signed := rt.credentials(r.Header)
	var token string
	if bearer {
		var err error
		if token, err = bearerToken(r.Header); err != nil {
			if errors.Is(err, errNoCredentials) && rt.auth == config.AuthAny {
				err = &noCredentialsError{scheme: rt.scheme}
			}
			return deny(err, rt)
		}
		p, err := h.verifier.VerifyFor(r.Context(), token, rt.issuers)
		if err != nil {
			_, d := deny(err, rt)
			return token, d
		}
		st.principal = p
		if err := rt.allow(p); err != nil {
			_, d := deny(err, rt)
			return token, d
		}
	}
	if signed {
		release, err := h.checkSignature(w, r, st, rt)
		defer release()
		if err != nil {
			_, d := deny(err, rt)
			return token, d
		}
		defer h.settle(st) // releases the claim of a message not forwarded
	}
	if err := h.limit(r, st); err != nil {
		_, d := deny(err, rt)
		return token, d
	}
	return token, h.forward(w, r, st, DecisionAllow)
}

func (h *Handler) forward(w *recorder, r *http.Request, st *state, decision string) string {
	if q := h.queued.by[st.route]; q != nil {
		return h.enqueue(w, r, st, q)
	}
	if r.ContentLength > h.maxBody {
		st.err = errTooLarge
		w.Header().Set("Connection", "close")
		h.writeAnswer(w, classify(errTooLarge), st.route)
		return decision
	}
	ctx := context.WithValue(r.Context(), stateKey{}, st)
	if r.Body != nil && r.Body != http.NoBody {
		st.body = body{http.MaxBytesReader(w, r.Body, h.maxBody), st}
		r.Body = &st.body
		if h.bodyRead > 0 {
			// A sender trickling its body is cut off; the deadline is
			// reset by the server for the next request on the connection.
			_ = http.NewResponseController(w).SetReadDeadline(h.now().Add(h.bodyRead))
		}
	}
	if st.upgrade != "" {
		// The tunnel must not outlive the token that opened it:
		// ReverseProxy closes the upgraded connection when the request's
		// context ends.
		until := h.now().Add(maxTunnel)
		if p := st.principal; p != nil && !p.Expiry.IsZero() && p.Expiry.Before(until) {
			until = p.Expiry
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, until)
		defer cancel()
	}
	ctx, stop := h.detach(ctx, st)
	defer stop()
	ctx = h.upstreamSpan(ctx, st)
	st.upstream = h.now()
	h.rp.ServeHTTP(w, r.WithContext(ctx))
	endUpstreamSpan(st)
	if h.obs != nil && st.err == nil {
		h.obs.ObserveUpstream(h.now().Sub(st.upstream))
	}
	return decision
}

// maxTunnel bounds an upgraded connection whose token has no expiry (and
// any upgrade on a public route).
const maxTunnel = time.Hour

// modifyResponse notes the receiver's status (a signed message is settled
// at once) and a successful upgrade: ReverseProxy writes the 101
// on the hijacked connection, past the recorder.
func (h *Handler) modifyResponse(resp *http.Response) error {
	st, ok := resp.Request.Context().Value(stateKey{}).(*state)
	if !ok {
		return nil
	}
	st.upstreamStatus = resp.StatusCode
	h.answered(st)
	if resp.StatusCode == http.StatusSwitchingProtocols {
		st.upgraded = true
	}
	return nil
}

// rewrite builds the outbound request: the cleaned path, hygienic headers,
// identity headers, X-Forwarded-*.
func (h *Handler) rewrite(pr *httputil.ProxyRequest) {
	st := pr.In.Context().Value(stateKey{}).(*state)
	pr.Out.URL.Path = st.path
	pr.Out.URL.RawPath = ""
	pr.Out.URL.Opaque = ""
	pr.SetURL(h.target)
	trusted := h.fwd.trustedPeer(pr.In)
	// Authorization is kept only when it held the bearer token verified
	// for this request (st.principal): under auth: any a signed request's
	// Authorization was never looked at, and under auth: signature or on
	// a public route nothing checked it.
	keepAuth := st.route.keepAuth && st.principal != nil
	h.headers.apply(pr.Out.Header, st.principal, keepAuth, trusted)
	// A request's trailers are not forwarded: a receiver that merges them
	// into its headers (Apache's MergeTrailers, older Tomcat) would read,
	// beside the headers checked and set here, values nothing checked.
	pr.Out.Trailer = nil
	h.headers.clientCert(pr.Out.Header, pr.In.TLS)
	h.fwd.apply(pr, trusted)
	h.injectTrace(pr)
}
