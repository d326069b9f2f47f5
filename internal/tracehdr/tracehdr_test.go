package tracehdr

import (
	"net/http"
	"testing"
)

// TestEverySpellingIsRecognized: each tracing system's headers match in
// any case and with "_" for "-"; ordinary headers do not.
func TestEverySpellingIsRecognized(t *testing.T) {
	for _, tc := range []struct {
		name           string
		trace, baggage bool
	}{
		{"traceparent", true, false},
		{"TRACESTATE", true, false},
		{"traceresponse", true, false},
		{"baggage", true, true},
		{"Correlation-Context", true, true},
		{"b3", true, false},
		{"X-B3-TraceId", true, false},
		{"x_b3_spanid", true, false},
		{"X_B3_ParentSpanId", true, false},
		{"X-B3-Sampled", true, false},
		{"x-b3-flags", true, false},
		{"uber-trace-id", true, false},
		{"Uber_Trace_Id", true, false},
		{"uberctx-tenant", true, true},
		{"UBERCTX_user", true, true},
		{"X-Cloud-Trace-Context", true, false},
		{"x_amzn_trace_id", true, false},
		{"grpc-trace-bin", true, false},
		{"ot-tracer-traceid", true, false},
		{"OT_TRACER_SAMPLED", true, false},
		{"ot-baggage-user", true, true},
		{"x-datadog-trace-id", true, false},
		{"sentry-trace", true, false},
		{"Content-Type", false, false},
		{"X-Request-Id", false, false},
		{"Baggages", false, false},
		{"Traceparents", false, false},
	} {
		if got := IsTraceContext(tc.name); got != tc.trace {
			t.Errorf("IsTraceContext(%q) = %v, want %v", tc.name, got, tc.trace)
		}
		if got := IsBaggage(tc.name); got != tc.baggage {
			t.Errorf("IsBaggage(%q) = %v, want %v", tc.name, got, tc.baggage)
		}
	}
	h := http.Header{"Baggage": {"a=1"}, "X_b3_traceid": {"x"}, "Traceparent": {"t"}, "Content-Type": {"c"}}
	StripBaggage(h)
	if h.Get("Baggage") != "" || h.Get("Traceparent") == "" {
		t.Errorf("StripBaggage left %v", h)
	}
	Strip(h)
	if len(h) != 1 || h.Get("Content-Type") != "c" {
		t.Errorf("Strip left %v", h)
	}
}
