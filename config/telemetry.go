package config

import (
	"errors"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Tracing protocols (telemetry.tracing.protocol, OTEL_EXPORTER_OTLP_PROTOCOL).
const (
	ProtocolHTTPProtobuf = "http/protobuf"
	ProtocolGRPC         = "grpc"
)

// TracingSamplers are the sampler names of OTEL_TRACES_SAMPLER that
// telemetry.tracing.sampler accepts.
var TracingSamplers = []string{"always_on", "always_off", "traceidratio",
	"parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"}

// SamplerTakesArg reports whether a sampler reads sampler_arg
// (OTEL_TRACES_SAMPLER_ARG): the ratio samplers.
func SamplerTakesArg(name string) bool { return strings.HasSuffix(name, "traceidratio") }

// Telemetry is what the gate reports besides the admin listener's
// /metrics.
type Telemetry struct {
	// Tracing, when given (even empty: `tracing: {}`), exports
	// OpenTelemetry traces over OTLP. Tracing is also on without it when
	// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is
	// set; with neither, it is off and costs nothing.
	Tracing *Tracing `yaml:"tracing"`
}

// Tracing configures the OpenTelemetry trace export. Every field left
// unset falls back to its standard OTEL_* environment variable, then to
// the OpenTelemetry default. Changes take effect at the next start,
// except TrustIncoming, which a reload applies.
type Tracing struct {
	// Endpoint is the collector's OTLP base URL, read like
	// OTEL_EXPORTER_OTLP_ENDPOINT: http://otel-collector:4318 for
	// http/protobuf (spans go to its /v1/traces), http://otel-collector:4317
	// for grpc; https:// for TLS. Unset: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
	// OTEL_EXPORTER_OTLP_ENDPOINT, then localhost.
	Endpoint string `yaml:"endpoint"`
	// Protocol is http/protobuf or grpc. Unset:
	// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, OTEL_EXPORTER_OTLP_PROTOCOL,
	// then http/protobuf.
	Protocol string `yaml:"protocol"`
	// Sampler is one of TracingSamplers. Unset: OTEL_TRACES_SAMPLER, then
	// parentbased_always_on.
	Sampler string `yaml:"sampler"`
	// SamplerArg is the ratio (0 to 1) of the traceidratio samplers.
	// Unset: OTEL_TRACES_SAMPLER_ARG, then 1.
	SamplerArg *float64 `yaml:"sampler_arg"`
	// ServiceName is the service.name resource attribute. Unset:
	// OTEL_SERVICE_NAME, then "tokengate".
	ServiceName string `yaml:"service_name"`
	// ResourceAttributes are added to OTEL_RESOURCE_ATTRIBUTES (a key in
	// both: this one wins).
	ResourceAttributes map[string]string `yaml:"resource_attributes"`
	// TrustIncoming are the CIDRs (or addresses) of peers whose W3C
	// traceparent and tracestate the public listener continues: a proxy
	// in front that starts or checks traces. Anyone else's start a new
	// trace that links to theirs, and never reach the receiver. Default:
	// nobody (trusted_proxies is not implied: a proxy trusted for
	// X-Forwarded-For usually passes the sender's traceparent on as it
	// came).
	TrustIncoming []string `yaml:"trust_incoming"`
}

// TracingOn reports whether the configuration file turns tracing on (the
// environment may, too).
func (c *Config) TracingOn() bool { return c.Telemetry.Tracing != nil }

// tracing validates telemetry.tracing.
func (v *validator) tracing() {
	t := v.c.Telemetry.Tracing
	if t == nil {
		return
	}
	const p = "telemetry.tracing"
	if t.Endpoint != "" {
		if err := CheckCollectorURL(t.Endpoint); err != nil {
			v.add(p+".endpoint", "%v", err)
		}
	}
	switch t.Protocol {
	case "", ProtocolHTTPProtobuf, ProtocolGRPC:
	case "http/json":
		v.add(p+".protocol", "http/json is not supported: use http/protobuf or grpc")
	default:
		v.add(p+".protocol", "must be http/protobuf or grpc, got %q", t.Protocol)
	}
	if t.Sampler != "" && !slices.Contains(TracingSamplers, t.Sampler) {
		v.add(p+".sampler", "unknown sampler %q (one of %s)", t.Sampler, strings.Join(TracingSamplers, ", "))
	}
	if a := t.SamplerArg; a != nil {
		switch {
		case math.IsNaN(*a) || *a < 0 || *a > 1:
			v.add(p+".sampler_arg", "must be a ratio from 0 to 1, got %v", *a)
		case t.Sampler != "" && !SamplerTakesArg(t.Sampler):
			v.add(p+".sampler_arg", "is read only by the traceidratio and parentbased_traceidratio samplers, not %s", t.Sampler)
		}
	}
	if t.ServiceName != "" && strings.TrimSpace(t.ServiceName) == "" {
		v.add(p+".service_name", "must not be blank")
	}
	for k := range t.ResourceAttributes {
		if strings.TrimSpace(k) == "" {
			v.add(p+".resource_attributes", "a key must not be empty")
		}
	}
	v.cidrs(p+".trust_incoming", t.TrustIncoming)
}

// CheckCollectorURL checks a collector's OTLP endpoint
// (telemetry.tracing.endpoint, OTEL_EXPORTER_OTLP_ENDPOINT): an absolute
// http or https URL with a host and a valid port, without credentials, a
// query or a fragment. The error never holds the URL or a part of it: a
// mistyped one may carry credentials.
func CheckCollectorURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.Opaque != "":
		return errors.New("must be an absolute http or https URL (the collector's OTLP base URL, e.g. http://otel-collector:4318); the value is not shown, it may hold credentials")
	case u.User != nil:
		return errors.New("must not carry credentials: give the collector's headers in OTEL_EXPORTER_OTLP_HEADERS")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return errors.New("must not carry a query or fragment")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return errors.New("must have a port from 1 to 65535")
		}
	}
	return nil
}
