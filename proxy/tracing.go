package proxy

import (
	"context"
	"net/http"
	"net/http/httputil"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/spans"
)

// Tracing (Options.Propagator set): the listener's server span is in the
// request's context (made by the gate, which also decides whose
// traceparent it continues). The handler names it after the route, adds
// the route, decision and verified client id, wraps the forwarded
// request in an "upstream" client span, and sends the receiver our trace
// context: whatever traceparent or tracestate the sender sent is
// replaced, never passed on (the gate's server-span handler already
// removed an untrusted sender's other trace and baggage headers:
// telemetry.Tracing.Handler).

// traceHeaders are the W3C trace context headers tokengate writes itself
// when tracing is on.
var traceHeaders = []string{"Traceparent", "Tracestate"}

// clientAddress is the OpenTelemetry client.address attribute.
const clientAddress = attribute.Key("client.address")

// upstreamSpan starts the client span of a forwarded request, when the
// trace is sampled.
func (h *Handler) upstreamSpan(ctx context.Context, st *state) context.Context {
	if h.prop == nil || !trace.SpanFromContext(ctx).IsRecording() {
		return ctx
	}
	ctx, st.upSpan = spans.Start(ctx, "upstream", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(spans.ServerAddress.String(h.target.Host)))
	return ctx
}

// endUpstreamSpan records the receiver's answer on the client span.
func endUpstreamSpan(st *state) {
	s := st.upSpan
	if s == nil {
		return
	}
	if st.upstreamStatus != 0 {
		s.SetAttributes(spans.StatusCode.Int(st.upstreamStatus))
		if st.upstreamStatus >= 500 {
			s.SetStatus(codes.Error, "")
		}
	} else {
		s.SetStatus(codes.Error, "no answer from the receiver") // never the error's text: it holds the URL
	}
	s.End()
}

// injectTrace replaces the outbound request's trace context with the
// span in its context (the upstream span, or the server span when the
// trace is not sampled).
func (h *Handler) injectTrace(pr *httputil.ProxyRequest) {
	if h.prop == nil {
		return
	}
	for _, k := range traceHeaders {
		delete(pr.Out.Header, k)
	}
	h.prop.Inject(pr.In.Context(), propagation.HeaderCarrier(pr.Out.Header))
}

// storedTrace takes the trace context rewrite wrote into a queued
// message's headers: it is kept apart (the delivery links to it) and the
// headers stored carry none.
func (h *Handler) storedTrace(hd http.Header) string {
	if h.prop == nil {
		return ""
	}
	tp := hd.Get("Traceparent")
	for _, k := range traceHeaders {
		delete(hd, k)
	}
	return tp
}

// traceRequest names the server span after the route and records the
// decision and the client address as trusted_proxies resolve it (in place
// of otelhttp's, which believes any X-Forwarded-For), and adds the
// trace's ids to the access-log line.
func (h *Handler) traceRequest(ctx context.Context, r *http.Request, st *state, decision string, fields []zap.Field) []zap.Field {
	span := trace.SpanFromContext(ctx)
	sc := span.SpanContext()
	if !sc.IsValid() {
		return fields
	}
	if span.IsRecording() {
		name := ""
		if st.route != nil {
			name = st.route.name
			span.SetName(spans.MethodName(r.Method) + " " + name)
		}
		span.SetAttributes(spans.Route.String(name), spans.Decision.String(decision), clientAddress.String(st.client))
		if p := st.principal; p != nil {
			span.SetAttributes(spans.Issuer.String(p.Source), spans.ClientID.String(p.ClientID))
		}
	}
	if fields == nil {
		return nil
	}
	return append(fields, zap.Stringer("trace_id", sc.TraceID()), zap.Stringer("span_id", sc.SpanID()))
}
