package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/spans"
	"github.com/tokengate/tokengate/queue"
	"github.com/tokengate/tokengate/signature"
)

// Enqueuer stores a verified request for delivery to the receiver and
// returns once it is durable; *queue.Queue implements it.
type Enqueuer interface {
	Enqueue(ctx context.Context, m *queue.Message) error
}

var _ Enqueuer = (*queue.Queue)(nil)

// DecisionQueued: a verified request stored for delivery (ack_status).
const DecisionQueued = "queued"

// Refusals of a queued route whose message could not be stored (503 with
// Retry-After: nothing was acknowledged, the sender retries).
var (
	errQueueFull        = errors.New("delivery queue full")
	errQueueUnavailable = errors.New("delivery queue cannot store the message")
)

// queuedRoute is a compiled routes[].delivery with mode queued.
type queuedRoute struct {
	ack int
	// idHeader carries the sender's own message id, when the route's
	// signature scheme has one.
	idHeader string
}

// senderIDHeaders name the message-id header of each scheme whose
// signature covers it. GitHub's X-GitHub-Delivery and Shopify's
// X-Shopify-Webhook-Id are not signed: anyone replaying a signed body can
// set them, so their messages are named by what the signature covers.
var senderIDHeaders = map[string]string{
	signature.StandardWebhooks: "Webhook-Id",
}

// deliveryIDRE is the form a sender's id must have to be reused.
var deliveryIDRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// queuedRoutes are the handler's queued routes and their queue.
type queuedRoutes struct {
	e  Enqueuer
	by map[*route]*queuedRoute
}

// compileQueued finds the queued routes; they need an Enqueuer.
func compileQueued(cfg *config.Config, routes []*route, e Enqueuer) (queuedRoutes, error) {
	out := queuedRoutes{e: e, by: map[*route]*queuedRoute{}}
	for i, r := range cfg.Routes {
		if !r.Queued() {
			continue
		}
		if e == nil {
			return out, fmt.Errorf("proxy: route %q is queued but no queue was given", r.Name)
		}
		q := &queuedRoute{ack: r.Delivery.AckStatus}
		if r.Signature != nil {
			q.idHeader = senderIDHeaders[r.Signature.Scheme]
		}
		out.by[routes[i]] = q
	}
	return out, nil
}

// enqueue stores a request that passed every check of a queued route and
// answers ack_status once it is durable. The body is read whole (a
// signed one already was), bounded and charged like a signed body; the
// headers are those the reverse proxy would send.
func (h *Handler) enqueue(w *recorder, r *http.Request, st *state, q *queuedRoute) string {
	body := st.delivery.body
	if st.receipt == nil { // not read for a signature
		b, release, err := h.readSigned(w, r, st, h.maxBody)
		defer release()
		if err != nil {
			return h.refuseQueued(w, st, err)
		}
		body = b
	}
	ctx := context.WithValue(r.Context(), stateKey{}, st)
	in := r.WithContext(ctx)
	out := r.Clone(ctx)
	removeHopByHop(out.Header)
	for _, k := range gateForwarding {
		out.Header.Del(k) // as ReverseProxy does before Rewrite
	}
	h.rewrite(&httputil.ProxyRequest{In: in, Out: out})
	m := &queue.Message{ // out.Header is handed over: nothing here changes it after
		Route: st.route.name, Method: r.Method, Path: st.path, Query: forwardedQuery(r.URL.RawQuery),
		Header: out.Header, Body: body, Received: h.now(), Trace: h.storedTrace(out.Header),
	}
	if p := st.principal; p != nil {
		m.Identity.Subject, m.Identity.ClientID, m.Identity.Issuer = p.Subject, p.ClientID, p.Issuer
	}
	if st.receipt != nil {
		m.Identity.Signature = st.route.scheme
		if id := r.Header.Get(q.idHeader); q.idHeader != "" && deliveryIDRE.MatchString(id) {
			m.DeliveryID = id
		} else if deliveryIDRE.MatchString(st.receipt.MessageID) {
			m.DeliveryID = st.receipt.MessageID
		}
	}
	// The store bounds its own write (the file store's commit by the
	// disk, Redis's by its timeouts), so no deadline (a timer per
	// message) is added here. A sender that goes away while the store's
	// commit has stalled is let go with nothing stored; once the store
	// took the write, it finishes (queue.Store.Add). The warning for a
	// store that cannot be written is written at most once a second.
	if err := h.store(r.Context(), m); err != nil {
		if errors.Is(err, context.Canceled) {
			// The sender went away while the store stalled: its 503 is
			// not the store's warning to log once more.
			return h.refuseQueued(w, st, fmt.Errorf("%w: %w", errQueueUnavailable, err))
		}
		if !errors.Is(err, queue.ErrFull) {
			h.storeWarn.log(h.log, st.route.name, err)
			return h.refuseQueued(w, st, fmt.Errorf("%w: %w", errQueueUnavailable, err))
		}
		return h.refuseQueued(w, st, fmt.Errorf("%w: %w", errQueueFull, err))
	}
	st.upstreamStatus = q.ack // a signed message's claim is settled as taken
	hd := w.Header()
	hd["Content-Type"], hd["Cache-Control"], hd["X-Content-Type-Options"] = ackContentType, ackNoStore, ackNoSniff
	w.WriteHeader(q.ack)
	_, _ = w.Write(ackBody(m.DeliveryID))
	return DecisionQueued
}

// ackBody is the acknowledgement's JSON, {"result":"queued",
// "delivery_id":…}, as encoding/json writes it; an id (generated, or a
// sender's that matched deliveryIDRE) is plain ASCII and is written as
// is, without reflection.
func ackBody(id string) []byte {
	for i := range len(id) {
		if c := id[i]; c < 0x20 || c >= 0x7f || strings.IndexByte(`"\<>&`, c) >= 0 {
			b, _ := json.Marshal(struct {
				Result     string `json:"result"`
				DeliveryID string `json:"delivery_id"`
			}{"queued", id})
			return append(b, '\n')
		}
	}
	const head, tail = `{"result":"queued","delivery_id":"`, "\"}\n"
	b := make([]byte, 0, len(head)+len(id)+len(tail))
	return append(append(append(b, head...), id...), tail...)
}

// forwardedQuery is a raw query as ReverseProxy forwards it on a direct
// route: one with a semicolon or a malformed escape is parsed and
// re-encoded, which drops what Go does not parse as a parameter (a
// receiver splitting on ';' would read "a=1;access_token=…" as a token
// in the query); any other query is kept as sent.
func forwardedQuery(raw string) string {
	clean := !strings.Contains(raw, ";")
	for i := 0; clean && i < len(raw); i++ {
		if raw[i] == '%' {
			clean = i+2 < len(raw) && isHex(raw[i+1]) && isHex(raw[i+2])
		}
	}
	if clean {
		return raw
	}
	v, _ := url.ParseQuery(raw)
	return v.Encode()
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

// The acknowledgement's header values, shared by every answer (nothing
// changes a header value in place).
var (
	ackContentType = []string{"application/json"}
	ackNoStore     = []string{"no-store"}
	ackNoSniff     = []string{"nosniff"}
)

// storeWarnEvery is how often the warning for a store that cannot be
// written is written at most.
const storeWarnEvery = time.Second

// storeWarning writes that warning at most once per storeWarnEvery,
// saying how many refusals it did not log: under load it was a line, and
// a flush, per refused message.
type storeWarning struct {
	every   rate.Sometimes
	refused atomic.Int64 // since the last line written
}

func newStoreWarning() *storeWarning {
	return &storeWarning{every: rate.Sometimes{Interval: storeWarnEvery}}
}

func (s *storeWarning) log(log *zap.Logger, route string, err error) {
	s.refused.Add(1)
	s.every.Do(func() {
		log.Warn("queue: a verified message could not be stored; the sender gets 503 and retries", zap.String("route", route),
			zap.Int64("earlier_ones_not_logged", s.refused.Swap(0)-1), zap.Error(err))
	})
}

// refuseQueued answers a queued request that was not stored.
func (h *Handler) refuseQueued(w *recorder, st *state, err error) string {
	st.err = err
	a := classify(err)
	if a.status == http.StatusRequestEntityTooLarge || a.status == http.StatusRequestTimeout {
		w.Header().Set("Connection", "close") // the rest of the body is not read
	}
	h.writeAnswer(w, a, st.route)
	return a.decision
}

// hopByHop are the headers ReverseProxy removes (RFC 9110 §7.6.1).
var hopByHop = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// removeHopByHop removes hop-by-hop headers and those Connection names,
// as ReverseProxy does.
func removeHopByHop(h http.Header) {
	for _, f := range h["Connection"] {
		for sf := range strings.SplitSeq(f, ",") {
			if sf = textproto.TrimString(sf); sf != "" {
				h.Del(sf)
			}
		}
	}
	for _, k := range hopByHop {
		h.Del(k)
	}
}

// store enqueues m within a "queue.store" span (when sampled).
func (h *Handler) store(ctx context.Context, m *queue.Message) error {
	ctx, span := spans.Start(ctx, "queue.store")
	err := h.queued.e.Enqueue(ctx, m)
	if span.IsRecording() {
		r := "stored"
		switch {
		case errors.Is(err, queue.ErrFull):
			r = "full"
		case err != nil:
			r = "unavailable"
			span.SetStatus(codes.Error, r)
		}
		span.SetAttributes(spans.Route.String(m.Route), spans.Result.String(r))
		span.End()
	}
	return err
}
