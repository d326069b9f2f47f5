package config

import (
	"strings"
	"testing"
)

// TestTracingBlockValidation: every telemetry.tracing problem is reported
// with its path, and a valid block parses with its values.
func TestTracingBlockValidation(t *testing.T) {
	base := "upstream: http://127.0.0.1:9\nissuers:\n  - name: a\n    issuer: https://idp.example\n    audiences: [x]\nroutes:\n  - path_prefix: /r\n    require: { issuers: [a] }\n"
	cases := []struct {
		name, yaml string
		want       string // substring of the error, "" for valid
		secret     string // must not appear in the error
	}{
		{"empty block turns tracing on", "telemetry:\n  tracing: {}\n", "", ""},
		{"full block", "telemetry:\n  tracing:\n    endpoint: http://otel-collector:4318\n    protocol: grpc\n    sampler: parentbased_traceidratio\n    sampler_arg: 0.01\n    service_name: hooks-gate\n    resource_attributes: { deployment.environment: prod }\n    trust_incoming: [10.0.0.0/8, 192.0.2.1]\n", "", ""},
		{"endpoint not a URL", "telemetry:\n  tracing:\n    endpoint: otel-collector:4318\n", "telemetry.tracing.endpoint: must be an absolute http or https URL", ""},
		{"endpoint with credentials", "telemetry:\n  tracing:\n    endpoint: https://user:pw@collector.example\n", "OTEL_EXPORTER_OTLP_HEADERS", "pw@"},
		{"unparsable endpoint with credentials", "telemetry:\n  tracing:\n    endpoint: 'http://yuser:YAMLPASS_Uu9@[::1'\n", "telemetry.tracing.endpoint: must be an absolute http or https URL", "YAMLPASS_Uu9"},
		{"endpoint scheme holding a user", "telemetry:\n  tracing:\n    endpoint: 'yuser:YAMLPASS_Uu9@collector'\n", "telemetry.tracing.endpoint: must be an absolute http or https URL", "YAMLPASS_Uu9"},
		{"endpoint without a host", "telemetry:\n  tracing:\n    endpoint: 'http://:4318'\n", "telemetry.tracing.endpoint: must be an absolute http or https URL", ""},
		{"endpoint port out of range", "telemetry:\n  tracing:\n    endpoint: 'http://c:70000'\n", "telemetry.tracing.endpoint: must have a port from 1 to 65535", ""},
		{"NaN ratio", "telemetry:\n  tracing:\n    sampler: traceidratio\n    sampler_arg: .nan\n", "telemetry.tracing.sampler_arg", ""},
		{"http/json", "telemetry:\n  tracing:\n    protocol: http/json\n", "telemetry.tracing.protocol: http/json is not supported", ""},
		{"unknown protocol", "telemetry:\n  tracing:\n    protocol: thrift\n", "must be http/protobuf or grpc", ""},
		{"unknown sampler", "telemetry:\n  tracing:\n    sampler: ratio\n", `telemetry.tracing.sampler: unknown sampler "ratio"`, ""},
		{"ratio above 1", "telemetry:\n  tracing:\n    sampler: traceidratio\n    sampler_arg: 5\n", "telemetry.tracing.sampler_arg: must be a ratio from 0 to 1", ""},
		{"arg without a ratio sampler", "telemetry:\n  tracing:\n    sampler: always_on\n    sampler_arg: 0.5\n", "read only by the traceidratio", ""},
		{"bad CIDR", "telemetry:\n  tracing:\n    trust_incoming: [10.0.0.0/33]\n", "telemetry.tracing.trust_incoming[0]", ""},
		{"typo", "telemetry:\n  tracing:\n    sampler_args: 0.5\n", `did you mean "sampler_arg"`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(base+tc.yaml), t.TempDir(), Options{LookupEnv: func(string) (string, bool) { return "", false }})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid config refused: %v", err)
				}
				if !c.TracingOn() {
					t.Fatal("a telemetry.tracing block did not turn tracing on")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if tc.secret != "" && strings.Contains(err.Error(), tc.secret) {
				t.Fatalf("the error shows the endpoint's credentials: %v", err)
			}
		})
	}
	c, err := Parse([]byte(base), t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.TracingOn() {
		t.Fatal("tracing on without a telemetry block")
	}
}
