package telemetry

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/testpki"
)

// Secrets planted in malformed variables: no error or log may show them.
const (
	apiKey  = "OTLPAPIKEY_Rr5"
	urlPass = "OTLPURLPASS_Tt8"
)

// TestInvalidOTELVariablesRefuseToStart: with tracing on, every OTEL_*
// variable tokengate or the SDK reads for traces is checked before the
// SDK sees it; a bad one is an error naming it (tracing does not start,
// so the gate does not either), never showing a header's value or an
// endpoint's credentials; valid values of all of them start.
func TestInvalidOTELVariablesRefuseToStart(t *testing.T) {
	ca := testpki.New(t, "collector CA")
	cert, key, _ := ca.Issue(t, "tokengate", false, time.Now().Add(time.Hour))
	certFile, keyFile := ca.Write(t, "client.pem", cert), ca.Write(t, "client.key", key)
	notPEM := ca.Write(t, "not.pem", []byte("not a certificate"))
	const endpoint = "OTEL_EXPORTER_OTLP_ENDPOINT"
	cases := []struct {
		name, variable string
		env            map[string]string
	}{
		{"NaN ratio", "OTEL_TRACES_SAMPLER_ARG", map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "NaN"}},
		{"NaN ratio, default sampler", "OTEL_TRACES_SAMPLER_ARG", map[string]string{"OTEL_TRACES_SAMPLER_ARG": "nan"}},
		{"infinite ratio", "OTEL_TRACES_SAMPLER_ARG", map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "+Inf"}},
		{"unknown sampler", "OTEL_TRACES_SAMPLER", map[string]string{"OTEL_TRACES_SAMPLER": "bogus"}},
		{"endpoint not a URL", endpoint, map[string]string{endpoint: "not a url"}},
		{"endpoint ftp", endpoint, map[string]string{endpoint: "ftp://collector:4318"}},
		{"endpoint unparsable", endpoint, map[string]string{endpoint: "http://[::1"}},
		{"endpoint unparsable with credentials", endpoint, map[string]string{endpoint: "http://u:" + urlPass + "@[::1"}},
		{"endpoint with credentials", endpoint, map[string]string{endpoint: "https://u:" + urlPass + "@collector:4318"}},
		{"traces endpoint with a query", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces?key=" + urlPass}},
		{"protocol", "OTEL_EXPORTER_OTLP_PROTOCOL", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}},
		{"traces protocol", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "thrift"}},
		{"timeout not a number", "OTEL_EXPORTER_OTLP_TIMEOUT", map[string]string{"OTEL_EXPORTER_OTLP_TIMEOUT": "abc"}},
		{"timeout negative", "OTEL_EXPORTER_OTLP_TIMEOUT", map[string]string{"OTEL_EXPORTER_OTLP_TIMEOUT": "-5"}},
		{"traces timeout zero", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "0"}},
		{"header value not percent-encoding", "OTEL_EXPORTER_OTLP_HEADERS", map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=" + apiKey + "%zz"}},
		{"header without =", "OTEL_EXPORTER_OTLP_HEADERS", map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "authorization: Bearer " + apiKey}},
		{"header name with a space", "OTEL_EXPORTER_OTLP_TRACES_HEADERS", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "api key=" + apiKey}},
		{"header value with CRLF", "OTEL_EXPORTER_OTLP_HEADERS", map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=" + apiKey + "%0d%0aX-Evil: 1"}},
		{"empty header entry", "OTEL_EXPORTER_OTLP_HEADERS", map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=" + apiKey + ","}},
		{"compression", "OTEL_EXPORTER_OTLP_COMPRESSION", map[string]string{"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}},
		{"certificate missing", "OTEL_EXPORTER_OTLP_CERTIFICATE", map[string]string{"OTEL_EXPORTER_OTLP_CERTIFICATE": "/nonexistent/ca.pem"}},
		{"certificate not PEM", "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": notPEM}},
		{"client certificate without its key", "OTEL_EXPORTER_OTLP_CLIENT_KEY", map[string]string{"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": certFile}},
		{"client key not matching", "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE": ca.File, "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY": keyFile}},
		{"insecure", "OTEL_EXPORTER_OTLP_INSECURE", map[string]string{"OTEL_EXPORTER_OTLP_INSECURE": "yes"}},
		{"attribute length not a number", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", map[string]string{"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "abc"}},
		{"attribute length negative", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", map[string]string{"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "-5"}},
		{"attribute length zero", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", map[string]string{"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "0"}},
		{"attribute length above the cap", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", map[string]string{"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "100000"}},
		{"span attribute length above the cap", "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", map[string]string{"OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "257"}},
		{"link count", "OTEL_SPAN_LINK_COUNT_LIMIT", map[string]string{"OTEL_SPAN_LINK_COUNT_LIMIT": "many"}},
		{"SDK disabled maybe", "OTEL_SDK_DISABLED", map[string]string{"OTEL_SDK_DISABLED": "maybe"}},
		{"BSP delay", "OTEL_BSP_SCHEDULE_DELAY", map[string]string{"OTEL_BSP_SCHEDULE_DELAY": "5s"}},
		{"BSP timeout", "OTEL_BSP_EXPORT_TIMEOUT", map[string]string{"OTEL_BSP_EXPORT_TIMEOUT": "1.5"}},
		{"BSP queue", "OTEL_BSP_MAX_QUEUE_SIZE", map[string]string{"OTEL_BSP_MAX_QUEUE_SIZE": "-1"}},
		{"BSP batch", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", map[string]string{"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "x"}},
		{"resource attributes", "OTEL_RESOURCE_ATTRIBUTES", map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "team=" + apiKey + "%zz"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{endpoint: "http://127.0.0.1:9"}
			for k, v := range tc.env {
				env[k] = v
			}
			tr, err := NewTracing(t.Context(), TracingOptions{Getenv: envOf(env), Exporter: tracetest.NewInMemoryExporter()})
			if err == nil || tr != nil {
				t.Fatalf("started with %s set to %q", tc.variable, env[tc.variable])
			}
			if !strings.Contains(err.Error(), tc.variable+":") && !strings.Contains(err.Error(), tc.variable+" ") {
				t.Errorf("the error does not name %s: %v", tc.variable, err)
			}
			for _, s := range []string{apiKey, urlPass} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("the error shows a secret: %v", err)
				}
			}
			if err := CheckTracing(nil, envOf(env)); err == nil || err.Error() != mustErr(t, env).Error() {
				t.Errorf("CheckTracing does not say what the start says: %v", err)
			}
		})
	}
	valid := map[string]string{
		endpoint: "http://127.0.0.1:9", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://collector.example/v1/traces",
		"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
		"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25",
		"OTEL_EXPORTER_OTLP_TIMEOUT": "5000", "OTEL_EXPORTER_OTLP_HEADERS": " x-api-key = abc%20def , tenant=7",
		"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "none",
		"OTEL_EXPORTER_OTLP_CERTIFICATE": ca.File, "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": certFile, "OTEL_EXPORTER_OTLP_CLIENT_KEY": keyFile,
		"OTEL_EXPORTER_OTLP_INSECURE": "false", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "64", "OTEL_SPAN_LINK_COUNT_LIMIT": "0",
		"OTEL_SDK_DISABLED": "FALSE", "OTEL_BSP_SCHEDULE_DELAY": "1000", "OTEL_BSP_MAX_QUEUE_SIZE": "4096",
		"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,team=a%20b",
	}
	tr, err := NewTracing(t.Context(), TracingOptions{Getenv: envOf(valid), Exporter: tracetest.NewInMemoryExporter()})
	if err != nil || tr == nil {
		t.Fatalf("valid variables refused: %v", err)
	}
	_ = tr.Shutdown(context.Background())
	if tr, err := NewTracing(t.Context(), TracingOptions{Getenv: envOf(map[string]string{"OTEL_SDK_DISABLED": "maybe"})}); err == nil || tr != nil {
		t.Errorf("OTEL_SDK_DISABLED=maybe is checked even when nothing else turns tracing on: %v", err)
	}
}

func mustErr(t *testing.T, env map[string]string) error {
	t.Helper()
	_, _, err := resolveTracing(nil, envOf(env))
	if err == nil {
		t.Fatal("resolveTracing accepted it")
	}
	return err
}

// TestAttributeLengthVariableOnlyLowersTheCap: a valid
// OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT lowers the 256-byte bound; a value
// above it (had it got past the check) does not lift it.
func TestAttributeLengthVariableOnlyLowersTheCap(t *testing.T) {
	for _, tc := range []struct {
		limit string
		want  int
	}{{"64", 64}, {"100000", MaxAttributeLength}, {"-1", MaxAttributeLength}} {
		t.Run(tc.limit, func(t *testing.T) {
			t.Setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", tc.limit) // what the SDK reads
			exp := tracetest.NewInMemoryExporter()
			tr, err := NewTracing(t.Context(), TracingOptions{Getenv: envOf(nil), Exporter: exp, Config: &config.Tracing{Sampler: "always_on"}})
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest(http.MethodPost, "/hooks/x", nil)
			r.Header.Set("User-Agent", strings.Repeat("u", 4096))
			tr.Handler(noContent, "", nil).ServeHTTP(httptest.NewRecorder(), r)
			if err := tr.tp.ForceFlush(context.Background()); err != nil {
				t.Fatal(err)
			}
			spans := exp.GetSpans()
			_ = tr.Shutdown(context.Background())
			if len(spans) != 1 {
				t.Fatalf("%d spans", len(spans))
			}
			for _, a := range spans[0].Attributes {
				if a.Key == "user_agent.original" && len(a.Value.AsString()) != tc.want {
					t.Errorf("User-Agent held at %d bytes, want %d", len(a.Value.AsString()), tc.want)
				}
			}
		})
	}
}

// TestSDKLogNeverCarriesValues: once tracing is set up, the SDK's own
// log (a value it cannot parse) goes to zap as its message alone, never
// to stderr and never with the value: here the SDK is made to read
// malformed variables directly, past tokengate's check.
func TestSDKLogNeverCarriesValues(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	tr, err := NewTracing(t.Context(), TracingOptions{Getenv: envOf(nil), Logger: zap.New(core),
		Exporter: tracetest.NewInMemoryExporter(), Config: &config.Tracing{}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tr.Shutdown(context.Background()) }()
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key="+apiKey+"%zz")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://u:"+urlPass+"@[::1")
	exp, err := otlptracehttp.New(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	_ = exp.Shutdown(context.Background())
	entries := logs.All()
	if len(entries) == 0 {
		t.Fatal("the SDK's log did not reach zap (it went to stderr, values and all)")
	}
	for _, e := range entries {
		line := fmt.Sprint(e.Message, e.ContextMap())
		if !strings.HasPrefix(e.Message, "opentelemetry: ") || strings.Contains(line, apiKey) || strings.Contains(line, urlPass) {
			t.Errorf("SDK log line %q", line)
		}
	}
}
