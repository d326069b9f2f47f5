package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// tracedRatio is the jwt-hot-traced scenario's sampling ratio.
const tracedRatio = 0.01

// otlpSink is an OTLP/HTTP receiver in the bench process: it decodes
// every export and counts the spans.
type otlpSink struct {
	*httptest.Server
	spans, exports atomic.Int64
}

func newOTLPSink() *otlpSink {
	s := &otlpSink{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if err != nil || r.URL.Path != "/v1/traces" || proto.Unmarshal(b, &req) != nil {
			http.Error(w, "not an OTLP/HTTP protobuf export", http.StatusBadRequest)
			return
		}
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				s.spans.Add(int64(len(ss.Spans)))
			}
		}
		s.exports.Add(1)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	return s
}

// jwtHotTraced is jwt-hot with tracing on: parentbased_traceidratio at
// 1 %, exported over OTLP/HTTP to a sink in this process. The load sends
// no traceparent, so every request starts a trace and 1 % are sampled.
func (e *env) jwtHotTraced() (row, error) {
	sink := newOTLPSink()
	defer sink.Close()
	saved := tokengateEnv
	tokengateEnv = append(slices.Clone(saved),
		"OTEL_EXPORTER_OTLP_ENDPOINT="+sink.URL,
		"OTEL_TRACES_SAMPLER=parentbased_traceidratio",
		fmt.Sprintf("OTEL_TRACES_SAMPLER_ARG=%g", tracedRatio))
	defer func() { tokengateEnv = saved }()
	tok := e.idp.Mint(e.idp.Claims(benchAud, "webhooks:write"))
	r, _, p, err := e.measure("jwt-hot-traced", false, e.o.conns, e.o.duration, func(int64) (request, bool) {
		return request{path: "/hooks/aftership", token: tok}, true
	})
	if p != nil {
		p.stop() // SIGTERM: the spans still batched are exported
	}
	if err == nil {
		r.note = strings.TrimLeft(fmt.Sprintf("%s; sampler parentbased_traceidratio %g, %d spans in %d OTLP exports", r.note, tracedRatio, sink.spans.Load(), sink.exports.Load()), "; ")
	}
	return r, err
}
