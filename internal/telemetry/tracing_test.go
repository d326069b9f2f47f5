package telemetry

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/tokengate/tokengate/config"
)

func envOf(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func ratio(f float64) *float64 { return &f }

// TestTracingSettingsFromConfigAndEnvironment: tracing is off unless the
// configuration has a telemetry.tracing block or an OTLP endpoint
// variable is set; the block's fields win over the OTEL_* variables,
// which win over the defaults; a bad variable is an error naming it.
func TestTracingSettingsFromConfigAndEnvironment(t *testing.T) {
	cases := []struct {
		name    string
		cfg     *config.Tracing
		env     map[string]string
		on      bool
		want    TracingSettings
		wantErr string
	}{
		{name: "nothing set: off", on: false},
		{name: "only a sampler variable: off", env: map[string]string{"OTEL_TRACES_SAMPLER": "always_on"}, on: false},
		{name: "endpoint variable: on with defaults", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, on: true,
			want: TracingSettings{Protocol: "http/protobuf", Sampler: "parentbased_always_on", SamplerArg: 1}},
		{name: "traces endpoint variable, grpc, ratio", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4317",
			"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"}, on: true,
			want: TracingSettings{Protocol: "grpc", Sampler: "parentbased_traceidratio", SamplerArg: 0.01}},
		{name: "traces protocol variable wins", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
			"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, on: true,
			want: TracingSettings{Protocol: "http/protobuf", Sampler: "parentbased_always_on", SamplerArg: 1}},
		{name: "empty block: on", cfg: &config.Tracing{}, on: true,
			want: TracingSettings{Protocol: "http/protobuf", Sampler: "parentbased_always_on", SamplerArg: 1}},
		{name: "block wins over the variables", cfg: &config.Tracing{Endpoint: "http://cfg:4317", Protocol: "grpc", Sampler: "traceidratio", SamplerArg: ratio(0.5)},
			env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_TRACES_SAMPLER": "always_off", "OTEL_TRACES_SAMPLER_ARG": "0.1"}, on: true,
			want: TracingSettings{Protocol: "grpc", Endpoint: "http://cfg:4317", Sampler: "traceidratio", SamplerArg: 0.5}},
		{name: "a block without a sampler takes the variable's", cfg: &config.Tracing{},
			env: map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}, on: true,
			want: TracingSettings{Protocol: "http/protobuf", Sampler: "traceidratio", SamplerArg: 0.25}},
		{name: "OTEL_SDK_DISABLED", cfg: &config.Tracing{}, env: map[string]string{"OTEL_SDK_DISABLED": "true"}, on: false},
		{name: "OTEL_TRACES_EXPORTER=none", cfg: &config.Tracing{}, env: map[string]string{"OTEL_TRACES_EXPORTER": "none"}, on: false},
		{name: "console exporter", cfg: &config.Tracing{}, env: map[string]string{"OTEL_TRACES_EXPORTER": "console"}, wantErr: "OTEL_TRACES_EXPORTER"},
		{name: "http/json", cfg: &config.Tracing{}, env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, wantErr: "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{name: "unknown sampler", cfg: &config.Tracing{}, env: map[string]string{"OTEL_TRACES_SAMPLER": "sometimes"}, wantErr: `OTEL_TRACES_SAMPLER: unknown sampler "sometimes"`},
		{name: "bad ratio", cfg: &config.Tracing{}, env: map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, wantErr: "OTEL_TRACES_SAMPLER_ARG"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, on, err := resolveTracing(tc.cfg, envOf(tc.env))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || on != tc.on {
				t.Fatalf("on %v, err %v; want on %v", on, err, tc.on)
			}
			if on && got != tc.want {
				t.Fatalf("settings %+v, want %+v", got, tc.want)
			}
		})
	}
	tr, err := NewTracing(t.Context(), TracingOptions{Getenv: envOf(nil)})
	if err != nil || tr != nil {
		t.Fatalf("NewTracing with nothing set: %v, %v; want nil (off)", tr, err)
	}
	next := http.NotFoundHandler()
	if h := tr.Handler(next, "x", nil); h == nil || tr.Provider() != nil || tr.Propagator() != nil {
		t.Fatal("a nil Tracing must wrap nothing and have no provider or propagator")
	}
}

// traceService is a real OTLP/gRPC receiver.
type traceService struct {
	coltracepb.UnimplementedTraceServiceServer
	mu  sync.Mutex
	got []*coltracepb.ExportTraceServiceRequest
}

func (s *traceService) Export(_ context.Context, r *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	s.mu.Lock()
	s.got = append(s.got, r)
	s.mu.Unlock()
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// exported flattens the exports into spans and the service names seen.
func exported(reqs []*coltracepb.ExportTraceServiceRequest) ([]*tracepb.Span, []string) {
	var spans []*tracepb.Span
	var services []string
	for _, r := range reqs {
		for _, rs := range r.ResourceSpans {
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.Key == "service.name" {
					services = append(services, kv.Value.GetStringValue())
				}
			}
			for _, ss := range rs.ScopeSpans {
				spans = append(spans, ss.Spans...)
			}
		}
	}
	return spans, services
}

// serveOnce sends one request through h.
func serveOnce(t *testing.T, h http.Handler) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/hooks/x", strings.NewReader("{}"))
	r.RemoteAddr = "192.0.2.7:4711"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusNoContent {
		t.Fatalf("status %d", w.Code)
	}
}

var noContent = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })

// TestGRPCProtocolExportsToARealReceiver: protocol grpc and a configured
// endpoint send spans to an OTLP/gRPC receiver, with the configured
// service name.
func TestGRPCProtocolExportsToARealReceiver(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	svc := &traceService{}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, svc)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	tr, err := NewTracing(t.Context(), TracingOptions{Getenv: envOf(nil), Config: &config.Tracing{
		Endpoint: "http://" + ln.Addr().String(), Protocol: config.ProtocolGRPC, Sampler: "always_on", ServiceName: "gate-grpc"}})
	if err != nil || tr == nil {
		t.Fatalf("NewTracing: %v, %v", tr, err)
	}
	serveOnce(t, tr.Handler(noContent, "grpc-test", nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatalf("flushing to the gRPC receiver: %v", err)
	}
	svc.mu.Lock()
	spans, services := exported(svc.got)
	svc.mu.Unlock()
	if len(spans) != 1 || spans[0].Name != "POST grpc-test" || len(services) != 1 || services[0] != "gate-grpc" {
		t.Fatalf("the gRPC receiver got spans %v of services %v", spans, services)
	}
}

// TestEnvironmentAloneConfiguresTracing: with no configuration block,
// OTEL_EXPORTER_OTLP_ENDPOINT (a base URL: spans go to its /v1/traces),
// OTEL_TRACES_SAMPLER, OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES set
// it all up, like the block would.
func TestEnvironmentAloneConfiguresTracing(t *testing.T) {
	var mu sync.Mutex
	var got []*coltracepb.ExportTraceServiceRequest
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if r.URL.Path != "/base/v1/traces" || proto.Unmarshal(b, &req) != nil {
			t.Errorf("OTLP/HTTP receiver: %s %s", r.Method, r.URL.Path)
			http.Error(w, "no", http.StatusNotFound)
			return
		}
		mu.Lock()
		got = append(got, &req)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer recv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", recv.URL+"/base")
	t.Setenv("OTEL_TRACES_SAMPLER", "always_on")
	t.Setenv("OTEL_SERVICE_NAME", "from-env")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
	tr, err := NewTracing(t.Context(), TracingOptions{})
	if err != nil || tr == nil {
		t.Fatalf("NewTracing: %v, %v", tr, err)
	}
	serveOnce(t, tr.Handler(noContent, "", nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	spans, services := exported(got)
	mu.Unlock()
	if len(spans) != 1 || spans[0].Name != "POST" || len(services) != 1 || services[0] != "from-env" {
		t.Fatalf("the receiver got spans %v of services %v", spans, services)
	}
}

// TestUntrustedPeersStartANewTrace: the server span continues a
// traceparent only from a trusted peer (by its address, never by
// X-Forwarded-For); anyone else's is a link.
func TestUntrustedPeersStartANewTrace(t *testing.T) {
	trusted, err := TrustPeers([]string{"10.0.0.0/8", "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		peer, xff string
		want      bool
	}{
		{"10.1.2.3:5000", "", true},
		{"192.0.2.1:5000", "", true},
		{"[::ffff:10.1.2.3]:5000", "", true},
		{"192.0.2.2:5000", "10.1.2.3", false},
		{"203.0.113.1:443", "", false},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = tc.peer
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := trusted(r); got != tc.want {
			t.Errorf("peer %s (X-Forwarded-For %q): trusted %v, want %v", tc.peer, tc.xff, got, tc.want)
		}
	}
	if _, err := TrustPeers([]string{"10.0.0.0/33"}); err == nil {
		t.Error("a bad CIDR was accepted")
	}
}

// TestServerSpanTrustsOnlyTrustedPeers: through Handler, a trusted peer's
// traceparent is the server span's parent and its tracestate is kept; an
// untrusted peer's request starts a new trace whose link to the sender's
// keeps nothing of its tracestate.
func TestServerSpanTrustsOnlyTrustedPeers(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tr, err := NewTracing(t.Context(), TracingOptions{Getenv: envOf(nil), Exporter: exp, Config: &config.Tracing{Sampler: "always_on"}})
	if err != nil {
		t.Fatal(err)
	}
	trusted, err := TrustPeers([]string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	h := tr.Handler(noContent, "", trusted)
	const sender = "0af7651916cd43dd8448eb211c80319c"
	for _, peer := range []string{"10.0.0.1:1000", "192.0.2.7:1000"} {
		r := httptest.NewRequest(http.MethodPost, "/hooks/x", nil)
		r.RemoteAddr = peer
		r.Header.Set("Traceparent", "00-"+sender+"-b7ad6b7169203331-01")
		r.Header.Set("Tracestate", "vendor="+strings.Repeat("v", 200))
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	if err := tr.tp.ForceFlush(context.Background()); err != nil { // Shutdown would empty the exporter
		t.Fatal(err)
	}
	got := exp.GetSpans()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d spans, want 2", len(got))
	}
	in, out := got[0], got[1]
	if in.Parent.TraceID().String() != sender || in.SpanContext.TraceState().Len() != 1 || len(in.Links) != 0 {
		t.Errorf("trusted peer: parent %v, tracestate %q, links %d; want the sender's trace and tracestate", in.Parent, in.SpanContext.TraceState(), len(in.Links))
	}
	if out.Parent.IsValid() || out.SpanContext.TraceID().String() == sender || len(out.Links) != 1 ||
		out.Links[0].SpanContext.TraceID().String() != sender || out.Links[0].SpanContext.TraceState().Len() != 0 {
		t.Errorf("untrusted peer: parent %v, trace %v, links %+v; want a new trace linked to the sender's, without its tracestate", out.Parent, out.SpanContext.TraceID(), out.Links)
	}
}
