package egress

import (
	"context"
	"errors"
	"net/http/httputil"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/spans"
	"github.com/tokengate/tokengate/internal/tracehdr"
)

// Tracing (HandlerOptions.Propagator set): the egress listener's server
// span, made by the gate, continues the app's trace (an egress listener
// binds loopback or requires client certificates: its callers are the
// operator's own apps). The handler adds a "token" span (Source.Token)
// and an "upstream" client span, and sends the vendor our traceparent
// in place of the app's trace context (injectTrace).

// upstreamSpan starts the client span of the request to the vendor, when
// the trace is sampled.
func (h *Handler) upstreamSpan(ctx context.Context) (context.Context, trace.Span) {
	if h.o.Propagator == nil || !trace.SpanFromContext(ctx).IsRecording() {
		return ctx, nil
	}
	return spans.Start(ctx, "upstream", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(spans.Egress.String(h.o.Name), spans.ServerAddress.String(h.o.Upstream.Host)))
}

// endUpstreamSpan records the status the app got.
func endUpstreamSpan(span trace.Span, code int) {
	if span == nil {
		return
	}
	if code == 0 {
		code = 200
	}
	span.SetAttributes(spans.StatusCode.Int(code))
	if code >= 500 {
		span.SetStatus(codes.Error, "")
	}
	span.End()
}

// injectTrace sends the vendor tokengate's traceparent in place of the
// app's trace context (the upstream span's, or the server span's when
// the trace is not sampled), without tracestate: the app's tracestate
// entries and baggage are its own tracing's, not the vendor's. Every
// other trace-context header of the app (b3, uber-trace-id, …, any
// spelling) is removed. With tracing off only the app's baggage is
// removed: trace ids pass as sent, internal context never leaves.
func (h *Handler) injectTrace(pr *httputil.ProxyRequest) {
	if h.o.Propagator == nil {
		tracehdr.StripBaggage(pr.Out.Header)
		return
	}
	tracehdr.Strip(pr.Out.Header)
	ctx := pr.In.Context()
	if sc := trace.SpanContextFromContext(ctx); sc.TraceState().Len() > 0 {
		ctx = trace.ContextWithSpanContext(ctx, sc.WithTraceState(trace.TraceState{}))
	}
	h.o.Propagator.Inject(ctx, propagation.HeaderCarrier(pr.Out.Header))
}

// traceRequest records the egress entry and any retry on the server
// span and adds the trace's ids to an access-log line (fields nil: no
// line).
func (h *Handler) traceRequest(ctx context.Context, st *reqState, fields []zap.Field) []zap.Field {
	span := trace.SpanFromContext(ctx)
	sc := span.SpanContext()
	if !sc.IsValid() {
		return fields
	}
	if span.IsRecording() {
		span.SetAttributes(spans.Egress.String(h.o.Name))
		if st.retried != "" {
			span.SetAttributes(retryOutcome.String(st.retried))
		}
	}
	if fields == nil {
		return nil
	}
	return append(fields, zap.Stringer("trace_id", sc.TraceID()), zap.Stringer("span_id", sc.SpanID()))
}

// retryOutcome is how a 401 from the vendor was handled (Retry… constants).
const retryOutcome = attribute.Key("tokengate.retry")

// tokenSpan starts the span of getting a token for a request; it is a
// child of the request's span.
func tokenSpan(ctx context.Context, name string) (context.Context, trace.Span) {
	ctx, span := spans.Start(ctx, "token")
	if span.IsRecording() {
		span.SetAttributes(spans.Egress.String(name))
	}
	return ctx, span
}

// endTokenSpan records whether the token was held (cached) or waited for,
// and the result; never the token.
func endTokenSpan(span trace.Span, waited bool, err error) {
	if !span.IsRecording() {
		return
	}
	r := "ok"
	if err != nil {
		r = "unavailable"
		span.SetStatus(codes.Error, r)
	}
	held := "hit"
	if waited {
		held = "miss"
	}
	span.SetAttributes(spans.Result.String(r), spans.Cache.String(held))
	span.End()
}

// requestSpan starts the span of one token request, in the background (a
// token request serves every caller waiting, and the refresh): the root
// of a trace of its own.
func (s *Source) requestSpan(ctx context.Context) (context.Context, trace.Span) {
	ctx, span := spans.Root(ctx, s.o.Tracer, "token request")
	if span.IsRecording() {
		span.SetAttributes(spans.Egress.String(s.o.Name))
	}
	return ctx, span
}

// endRequestSpan records the token request's result: success or the
// failure's label (an RFC 6749 error code, timeout, …).
func endRequestSpan(span trace.Span, result string) {
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(spans.Result.String(result))
	if result != resultSuccess {
		span.SetStatus(codes.Error, result)
	}
	span.End()
}

// tokenResult labels a token request's outcome as the metrics do.
func tokenResult(err error) string {
	var te *TokenError
	switch {
	case err == nil:
		return resultSuccess
	case errors.As(err, &te):
		return te.Label()
	}
	return errorOther
}
