package queue

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/tokengate/tokengate/internal/spans"
)

// startAttempt starts the span of one delivery attempt (tracing on): the
// root of a trace of its own, linked to the request that stored m.
func (q *Queue) startAttempt(ctx context.Context, m *Message) (context.Context, trace.Span) {
	if q.tp == nil {
		return ctx, nil
	}
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(spans.Route.String(m.Route), spans.Attempt.Int(m.Attempts))}
	if sc := q.storedBy(m); sc.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
	}
	return spans.Root(ctx, q.tp, "deliver "+m.Route, opts...)
}

// storedBy is the span context of the request that stored m; invalid
// when m has none (stored with tracing off, or by an older version).
func (q *Queue) storedBy(m *Message) trace.SpanContext {
	if m.Trace == "" {
		return trace.SpanContext{}
	}
	ctx := q.prop.Extract(context.Background(), propagation.MapCarrier{"traceparent": m.Trace})
	return trace.SpanContextFromContext(ctx)
}

// endAttempt records an attempt's outcome: the receiver's status and
// delivered, retry, dead or aborted. Never the answer's body or the
// error's text (it holds the receiver's URL).
func endAttempt(span trace.Span, ans Answer, outcome string) {
	if span == nil {
		return
	}
	span.SetAttributes(spans.Result.String(outcome))
	if ans.Status != 0 {
		span.SetAttributes(spans.StatusCode.Int(ans.Status))
	}
	if outcome != OutcomeDelivered {
		span.SetStatus(codes.Error, outcome)
	}
	span.End()
}

// injectTrace sends the attempt's trace context instead of any stored
// traceparent (tracing on); with tracing off the stored headers go as
// they are.
func (q *Queue) injectTrace(ctx context.Context, h http.Header) {
	if q.prop == nil {
		return
	}
	h.Del("Traceparent")
	h.Del("Tracestate")
	q.prop.Inject(ctx, propagation.HeaderCarrier(h))
}
