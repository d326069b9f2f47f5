// Package tracehdr knows the request headers that carry a trace context
// or baggage, in every tracing system's spelling: W3C (traceparent,
// tracestate, baggage), Zipkin B3, Jaeger, OpenTracing, AWS X-Ray, Google
// Cloud Trace, gRPC, Datadog, Sentry, SkyWalking, Elastic APM, New Relic
// and Instana. A name matches in any case and with "_" for "-", as
// CGI-style receivers read it (X_B3_TraceId is HTTP_X_B3_TRACEID, like
// X-B3-TraceId).
//
//	tracehdr.Strip(r.Header)        // a sender's trace context and baggage: none kept
//	tracehdr.StripBaggage(h)        // only the baggage
package tracehdr

import (
	"net/http"
	"strings"
)

// traceNames are the trace-context headers, canonical with "-".
var traceNames = map[string]bool{
	"Traceparent": true, "Tracestate": true, "Traceresponse": true,
	"B3": true, "X-B3-Traceid": true, "X-B3-Spanid": true, "X-B3-Parentspanid": true,
	"X-B3-Sampled": true, "X-B3-Flags": true,
	"Uber-Trace-Id": true, "Jaeger-Debug-Id": true,
	"X-Cloud-Trace-Context": true, "X-Amzn-Trace-Id": true, "Grpc-Trace-Bin": true,
	"X-Ot-Span-Context": true, "Sentry-Trace": true, "Elastic-Apm-Traceparent": true,
	"Newrelic": true, "Sw8": true, "Sw8-Correlation": true, "Sw8-X": true,
	"X-Datadog-Trace-Id": true, "X-Datadog-Parent-Id": true, "X-Datadog-Sampling-Priority": true,
	"X-Datadog-Origin": true, "X-Datadog-Tags": true,
}

// tracePrefixes are families of trace-context headers.
var tracePrefixes = []string{"Ot-Tracer-", "X-Instana-"}

// baggageNames are the headers that carry baggage: arbitrary key-values
// an application propagates (user and tenant ids, feature flags).
var baggageNames = map[string]bool{"Baggage": true, "Correlation-Context": true, "Jaeger-Baggage": true}

// baggagePrefixes are families of baggage headers (one key per header).
var baggagePrefixes = []string{"Uberctx-", "Ot-Baggage-"}

// normal is a header name as CGI-style stacks see it: "_" for "-", case
// folded to the canonical form.
func normal(k string) string {
	if strings.IndexByte(k, '_') >= 0 {
		k = strings.ReplaceAll(k, "_", "-")
	}
	return http.CanonicalHeaderKey(k)
}

func hasPrefix(k string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// IsBaggage reports whether a header, in any spelling, carries baggage.
func IsBaggage(name string) bool {
	k := normal(name)
	return baggageNames[k] || hasPrefix(k, baggagePrefixes)
}

// IsTraceContext reports whether a header, in any spelling, carries a
// trace context or baggage.
func IsTraceContext(name string) bool {
	k := normal(name)
	return traceNames[k] || hasPrefix(k, tracePrefixes) || baggageNames[k] || hasPrefix(k, baggagePrefixes)
}

// Strip removes every trace-context and baggage header from h.
func Strip(h http.Header) {
	for k := range h {
		if IsTraceContext(k) {
			delete(h, k)
		}
	}
}

// StripBaggage removes every baggage header from h.
func StripBaggage(h http.Header) {
	for k := range h {
		if IsBaggage(k) {
			delete(h, k)
		}
	}
}
