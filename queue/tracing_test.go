package queue

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

const (
	storingTrace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	staleTrace   = "00-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-1111111111111111-01"
)

// TestAttemptSpansLinkToTheStoringRequest: with tracing on, each attempt
// is a span of a new trace linked to the request that stored the message
// (Message.Trace), and the receiver gets the attempt's traceparent, never
// one stored in the headers; a message stored without Trace (an older
// version's, or stored with tracing off) decodes and is delivered in an
// unlinked trace; with tracing off the stored headers go as they are.
func TestAttemptSpansLinkToTheStoringRequest(t *testing.T) {
	old := `{"id":"0000000000000123456789abcdef","delivery_id":"d1","route":"gh","method":"POST","path":"/hooks/gh",` +
		`"header":{"Traceparent":["` + staleTrace + `"]},"body":"e30=","received":"2026-12-01T00:00:00Z","identity":{}}`
	m, err := decode([]byte(old), []byte(`{"state":"pending","attempts":0}`))
	if err != nil || m.Trace != "" || m.Route != "gh" {
		t.Fatalf("a message stored without a trace field: %+v, %v", m, err)
	}
	for _, traced := range []bool{true, false} {
		rc := newReceiver(t)
		s, err := OpenFile(FileOptions{Dir: t.TempDir()})
		must(t, err)
		t.Cleanup(func() { s.Close() })
		exp := tracetest.NewInMemoryExporter()
		o := Options{Routes: []RouteOptions{{Name: "gh"}}, Target: &url.URL{Scheme: "http", Host: strings.TrimPrefix(rc.URL, "http://")}}
		if traced {
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
			t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			o.Tracer, o.Propagator = tp, propagation.TraceContext{}
		}
		q, err := New(s, o)
		must(t, err)
		stale := http.Header{"Traceparent": {staleTrace}, "Tracestate": {"sender=chosen"}}
		linked := &Message{Route: "gh", Method: http.MethodPost, Path: "/a", Header: stale.Clone(), Body: []byte("{}"), Trace: storingTrace}
		unlinked := &Message{Route: "gh", Method: http.MethodPost, Path: "/b", Header: stale.Clone(), Body: []byte("{}")}
		must(t, q.Enqueue(context.Background(), linked))
		must(t, q.Enqueue(context.Background(), unlinked))
		if n := deliverDue(t, q); n != 2 {
			t.Fatalf("attempted %d", n)
		}
		hits := map[string]http.Header{}
		for _, h := range rc.got() {
			hits[h.path] = h.header
		}
		if !traced {
			for p, h := range hits {
				if h.Get("Traceparent") != staleTrace || h.Get("Tracestate") != "sender=chosen" {
					t.Errorf("tracing off: %s was not sent with its stored headers: %v", p, h)
				}
			}
			if len(exp.GetSpans()) != 0 {
				t.Errorf("tracing off made %d spans", len(exp.GetSpans()))
			}
			continue
		}
		spans := exp.GetSpans()
		if len(spans) != 2 {
			t.Fatalf("%d attempt spans, want 2", len(spans))
		}
		for _, sp := range spans {
			path := "/b"
			if len(sp.Links) == 1 {
				path = "/a"
				if got := sp.Links[0].SpanContext; got.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || got.SpanID().String() != "b7ad6b7169203331" {
					t.Errorf("the attempt links to %v, want the storing request", got)
				}
			}
			want := "00-" + sp.SpanContext.TraceID().String() + "-" + sp.SpanContext.SpanID().String() + "-01"
			if got := hits[path].Get("Traceparent"); got != want || sp.Parent.IsValid() || hits[path].Get("Tracestate") != "" {
				t.Errorf("%s: receiver got traceparent %q tracestate %q, want the attempt span's %q (a root)", path, got, hits[path].Get("Tracestate"), want)
			}
			if sp.Name != "deliver gh" {
				t.Errorf("span name %q", sp.Name)
			}
		}
		if len(spans[0].Links)+len(spans[1].Links) != 1 {
			t.Errorf("links: %d and %d, want one message linked", len(spans[0].Links), len(spans[1].Links))
		}
	}
}
