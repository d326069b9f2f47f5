package telemetry

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	noopmetric "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/spans"
	"github.com/tokengate/tokengate/internal/tracehdr"
)

// Tracing defaults.
const (
	DefaultServiceName = "tokengate"
	DefaultSampler     = "parentbased_always_on"
	// MaxAttributeLength bounds every attribute value a span holds
	// (OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT may only lower it): a sender
	// chooses its User-Agent and path, up to the 256 KiB request head,
	// and up to 2048 spans wait in the export queue.
	MaxAttributeLength = 256
)

// TracingOptions are what NewTracing reads besides the environment.
type TracingOptions struct {
	// Config is the configuration's telemetry.tracing block; nil: the
	// environment alone decides.
	Config *config.Tracing
	// Getenv reads the OTEL_* variables; default os.Getenv. (The OTLP
	// exporters also read OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT,
	// _COMPRESSION, _CERTIFICATE and the endpoints themselves, from the
	// process environment.)
	Getenv func(string) string
	// Version is the service.version resource attribute.
	Version string
	// Logger receives export failures (at most one line per 10s). nil: no
	// logging.
	Logger *zap.Logger
	// Exporter replaces the OTLP exporter (tests). nil: OTLP over the
	// configured protocol.
	Exporter sdktrace.SpanExporter
}

// Tracing is the process's OpenTelemetry trace pipeline: an SDK tracer
// provider that batches spans to an OTLP collector, and the W3C trace
// context propagator. It is built once per process and kept across
// reloads. A nil *Tracing is tracing off.
type Tracing struct {
	tp   *sdktrace.TracerProvider
	prop propagation.TextMapPropagator
	// Settings says what was resolved, for the start log.
	Settings TracingSettings
}

// TracingSettings are the resolved settings: configuration first, then
// the OTEL_* environment, then the defaults.
type TracingSettings struct {
	Protocol   string
	Endpoint   string // "" : the exporter's own (environment, else localhost)
	Sampler    string
	SamplerArg float64
}

// NewTracing builds the trace pipeline, or returns nil (tracing off) when
// neither the configuration has a telemetry.tracing block nor
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is
// set, or OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none says so.
// An invalid OTEL_* value is an error naming the variable (otelenv.go),
// checked before the SDK reads any; the SDK's own log goes to Logger,
// without values (sdklog.go).
func NewTracing(ctx context.Context, o TracingOptions) (*Tracing, error) {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	s, on, err := resolveTracing(o.Config, o.Getenv)
	if err != nil || !on {
		return nil, err
	}
	otel.SetLogger(sdkLogger(o.Logger)) // before the SDK reads anything
	exp := o.Exporter
	if exp == nil {
		if exp, err = newExporter(ctx, s); err != nil {
			return nil, fmt.Errorf("tracing: %w", err)
		}
	}
	res, err := tracingResource(ctx, o.Config, o.Version)
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	if o.Logger != nil {
		otel.SetErrorHandler(exportErrors(o.Logger))
	}
	limits := sdktrace.NewSpanLimits() // the OTEL_SPAN_*/OTEL_ATTRIBUTE_* variables
	if l := limits.AttributeValueLengthLimit; l < 1 || l > MaxAttributeLength {
		limits.AttributeValueLengthLimit = MaxAttributeLength // a variable only lowers it
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp), // a full queue drops spans; a request never waits for the collector
		//lint:ignore SA1019 WithRawSpanLimits would make a variable's 0 mean "none" instead of the default
		sdktrace.WithSpanLimits(limits),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(newSampler(s.Sampler, s.SamplerArg)),
	)
	return &Tracing{tp: tp, prop: propagation.TraceContext{}, Settings: s}, nil
}

// resolveTracing merges the configuration block with the environment.
// With tracing on, every OTEL_* variable is checked first (otelenv.go).
func resolveTracing(c *config.Tracing, getenv func(string) string) (TracingSettings, bool, error) {
	s := TracingSettings{Protocol: config.ProtocolHTTPProtobuf, Sampler: DefaultSampler, SamplerArg: 1}
	if off, err := envBool(getenv, "OTEL_SDK_DISABLED"); err != nil || off {
		return s, false, err
	}
	switch e := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); e {
	case "", "otlp":
	case "none":
		return s, false, nil
	default:
		return s, false, fmt.Errorf("OTEL_TRACES_EXPORTER: %q is not supported (otlp or none)", e)
	}
	if c == nil && strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_ENDPOINT")) == "" && strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) == "" {
		return s, false, nil
	}
	if err := checkEnv(getenv); err != nil {
		return s, false, err
	}
	if c == nil {
		c = &config.Tracing{}
	}
	s.Endpoint = c.Endpoint
	env := func(k string) string { return strings.TrimSpace(getenv(k)) }
	if p := firstSet(c.Protocol, env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"), env("OTEL_EXPORTER_OTLP_PROTOCOL")); p != "" {
		s.Protocol = p
	}
	if n := firstSet(c.Sampler, env("OTEL_TRACES_SAMPLER")); n != "" {
		s.Sampler = n
	}
	switch a := env("OTEL_TRACES_SAMPLER_ARG"); {
	case c.SamplerArg != nil:
		s.SamplerArg = *c.SamplerArg
	case a != "" && config.SamplerTakesArg(s.Sampler):
		s.SamplerArg, _ = strconv.ParseFloat(a, 64) // checked
	}
	return s, true, nil
}

// CheckTracing checks the configuration's telemetry.tracing block with
// the OTEL_* environment as the gate's start does (tokengate check):
// nil when tracing is off or would start.
func CheckTracing(c *config.Tracing, getenv func(string) string) error {
	_, _, err := resolveTracing(c, getenv)
	return err
}

func firstSet(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func newSampler(name string, arg float64) sdktrace.Sampler {
	switch name {
	case "always_on":
		return sdktrace.AlwaysSample()
	case "always_off":
		return sdktrace.NeverSample()
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(arg)
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample())
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(arg))
	}
	return sdktrace.ParentBased(sdktrace.AlwaysSample())
}

// newExporter builds the OTLP exporter. A configured endpoint is a base
// URL, as OTEL_EXPORTER_OTLP_ENDPOINT; without one the exporter reads the
// environment itself.
func newExporter(ctx context.Context, s TracingSettings) (sdktrace.SpanExporter, error) {
	if s.Protocol == config.ProtocolGRPC {
		var opts []otlptracegrpc.Option
		if s.Endpoint != "" {
			opts = append(opts, otlptracegrpc.WithEndpointURL(s.Endpoint))
		}
		return otlptracegrpc.New(ctx, opts...)
	}
	var opts []otlptracehttp.Option
	if s.Endpoint != "" {
		u, err := url.Parse(s.Endpoint)
		if err != nil {
			return nil, err
		}
		u.Path = path.Join("/", u.Path, "v1/traces")
		opts = append(opts, otlptracehttp.WithEndpointURL(u.String()))
	}
	return otlptracehttp.New(ctx, opts...)
}

// tracingResource names the service: service.name from the
// configuration, else OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES, else
// "tokengate"; the configuration's resource_attributes win over the
// environment's.
func tracingResource(ctx context.Context, c *config.Tracing, version string) (*resource.Resource, error) {
	if version == "" {
		version = "dev"
	}
	var own []attribute.KeyValue
	if c != nil {
		keys := make([]string, 0, len(c.ResourceAttributes))
		for k := range c.ResourceAttributes {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			own = append(own, attribute.String(k, c.ResourceAttributes[k]))
		}
		if c.ServiceName != "" {
			own = append(own, attribute.String("service.name", c.ServiceName))
		}
	}
	return resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", DefaultServiceName)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
		resource.WithAttributes(append(own, attribute.String("service.version", version))...),
	)
}

// exportErrors logs the SDK's errors (a collector that cannot be
// reached), at most one line per 10 seconds.
func exportErrors(log *zap.Logger) otel.ErrorHandler {
	every := rate.NewLimiter(rate.Every(10*time.Second), 1)
	log = log.Named("tracing")
	return otel.ErrorHandlerFunc(func(err error) {
		if every.Allow() {
			log.Warn("trace export failed; spans are dropped while it fails", zap.Error(err))
		}
	})
}

// Provider is the tracer provider; nil when tracing is off.
func (t *Tracing) Provider() trace.TracerProvider {
	if t == nil {
		return nil
	}
	return t.tp
}

// Propagator reads and writes W3C traceparent and tracestate; nil when
// tracing is off.
func (t *Tracing) Propagator() propagation.TextMapPropagator {
	if t == nil {
		return nil
	}
	return t.prop
}

// Handler wraps a listener's handler in a server span per request
// (otelhttp), named "METHOD name" (the proxy renames its spans after the
// route). A request's traceparent is continued only when trusted says
// so (nil: never); anyone else's starts a new trace with a link to
// theirs, its tracestate dropped first, and next sees none of its trace
// context or baggage headers (any tracing system's, any spelling:
// tracehdr), so nothing of it is kept, forwarded or stored. A trusted
// peer's headers all reach next. With tracing off it returns next
// itself.
func (t *Tracing) Handler(next http.Handler, name string, trusted func(*http.Request) bool) http.Handler {
	if t == nil {
		return next
	}
	if trusted == nil {
		trusted = func(*http.Request) bool { return false }
	}
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !trusted(r) {
			tracehdr.Strip(r.Header) // after otelhttp read the traceparent for the link
		}
		next.ServeHTTP(w, r)
	})
	h := otelhttp.NewHandler(inner, name,
		otelhttp.WithTracerProvider(t.tp),
		otelhttp.WithMeterProvider(noopmetric.NewMeterProvider()),
		otelhttp.WithPropagators(t.prop),
		otelhttp.WithPublicEndpointFn(func(r *http.Request) bool { return !trusted(r) }),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			if name == "" {
				return spans.MethodName(r.Method)
			}
			return spans.MethodName(r.Method) + " " + name
		}),
	)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !trusted(r) {
			r.Header.Del("Tracestate")
		}
		h.ServeHTTP(w, r)
	})
}

// Shutdown exports the spans still queued, and returns when ctx ends at
// the latest: an export or an exporter's close that hangs (a collector
// that never answers) goes on in the background, never holding the
// caller.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- t.tp.Shutdown(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TrustPeers returns whether a request's peer (never X-Forwarded-For) is
// in cidrs (CIDRs or addresses, validated by config).
func TrustPeers(cidrs []string) (func(*http.Request) bool, error) {
	var ps []netip.Prefix
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			a, aerr := netip.ParseAddr(c)
			if aerr != nil {
				return nil, fmt.Errorf("telemetry.tracing.trust_incoming: %q: %w", c, err)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		ps = append(ps, p.Masked())
	}
	return func(r *http.Request) bool {
		ap, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil {
			return false
		}
		a := ap.Addr().Unmap()
		for _, p := range ps {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}, nil
}
