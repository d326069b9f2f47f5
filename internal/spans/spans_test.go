package spans

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestStartCostsNothingWithoutASampledParent: with tracing off (no span
// in the context) or a trace that is not sampled, Start returns the
// context itself and a span that records nothing, without allocating;
// under a sampled span it starts a child with that span's provider.
func TestStartCostsNothingWithoutASampledParent(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0))))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	_, unsampled := tp.Tracer("t").Start(context.Background(), "root")
	defer unsampled.End()
	for name, ctx := range map[string]context.Context{
		"tracing off":     context.Background(),
		"trace unsampled": trace.ContextWithSpan(context.Background(), unsampled),
	} {
		if n := testing.AllocsPerRun(100, func() {
			got, span := Start(ctx, "verify")
			if got != ctx || span.IsRecording() {
				t.Fatal("Start made a span")
			}
			span.End()
		}); n != 0 {
			t.Errorf("%s: Start allocates %v times", name, n)
		}
	}
	sampled := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = sampled.Shutdown(context.Background()) })
	ctx, root := sampled.Tracer("t").Start(context.Background(), "root")
	_, child := Start(ctx, "verify")
	child.End()
	root.End()
	got := exp.GetSpans()
	if len(got) != 2 || got[0].Name != "verify" || got[0].Parent.SpanID() != root.SpanContext().SpanID() {
		t.Fatalf("under a sampled span: %v", got)
	}
	if _, s := Root(context.Background(), nil, "deliver"); s.IsRecording() {
		t.Fatal("Root without a provider made a span")
	}
}
