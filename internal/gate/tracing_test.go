package gate

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/protobuf/proto"

	"github.com/tokengate/tokengate/egress"
	"github.com/tokengate/tokengate/proxy"
	"github.com/tokengate/tokengate/verifier/verifiertest"
)

// otlpReceiver is a real OTLP/HTTP receiver: it takes POST /v1/traces,
// decodes each ExportTraceServiceRequest and keeps the raw bytes too.
type otlpReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	raw   []byte
	spans []*tracepb.Span
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	o := &otlpReceiver{}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			t.Errorf("OTLP receiver: %s %s (%s)", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
			http.Error(w, "not OTLP/HTTP protobuf", http.StatusBadRequest)
			return
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &req); err != nil {
			t.Errorf("OTLP receiver: undecodable export: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		o.mu.Lock()
		o.raw = append(o.raw, b...)
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				o.spans = append(o.spans, ss.Spans...)
			}
		}
		o.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *otlpReceiver) exported() ([]*tracepb.Span, []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]*tracepb.Span(nil), o.spans...), append([]byte(nil), o.raw...)
}

// spanSet answers questions about the exported spans.
type spanSet []*tracepb.Span

func (s spanSet) named(t *testing.T, name string, where func(*tracepb.Span) bool) *tracepb.Span {
	t.Helper()
	for _, sp := range s {
		if sp.Name == name && (where == nil || where(sp)) {
			return sp
		}
	}
	t.Fatalf("no exported span %q matching; exported: %s", name, s)
	return nil
}

func (s spanSet) childOf(t *testing.T, parent *tracepb.Span, name string) *tracepb.Span {
	t.Helper()
	return s.named(t, name, func(sp *tracepb.Span) bool {
		return string(sp.TraceId) == string(parent.TraceId) && string(sp.ParentSpanId) == string(parent.SpanId)
	})
}

func (s spanSet) String() string {
	var b strings.Builder
	for _, sp := range s {
		fmt.Fprintf(&b, "\n  %s trace=%x span=%x parent=%x links=%d %s", sp.Name, sp.TraceId, sp.SpanId, sp.ParentSpanId, len(sp.Links), attrs(sp))
	}
	return b.String()
}

func attrs(sp *tracepb.Span) map[string]string {
	m := map[string]string{}
	for _, kv := range sp.Attributes {
		v := kv.Value
		switch {
		case v.GetStringValue() != "":
			m[kv.Key] = v.GetStringValue()
		default:
			m[kv.Key] = fmt.Sprint(v.GetIntValue())
		}
	}
	return m
}

func wantAttrs(t *testing.T, sp *tracepb.Span, want map[string]string) {
	t.Helper()
	got := attrs(sp)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("span %q: attribute %s = %q, want %q (all: %v)", sp.Name, k, got[k], v, got)
		}
	}
}

// traceparent parses a W3C traceparent into its trace id and parent id.
func traceparent(t *testing.T, v string) (traceID, spanID string) {
	t.Helper()
	p := strings.Split(v, "-")
	if len(p) != 4 || len(p[1]) != 32 || len(p[2]) != 16 {
		t.Fatalf("not a traceparent: %q", v)
	}
	return p[1], p[2]
}

func ids(sp *tracepb.Span) (string, string) {
	return hex.EncodeToString(sp.TraceId), hex.EncodeToString(sp.SpanId)
}

// clientFrom is an HTTP client whose connections leave from ip.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
}

const (
	untrustedTrace = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	trustedTrace   = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	appTrace       = "cccccccccccccccccccccccccccccccc"
	senderSpan     = "1111111111111111"
	proxySpan      = "2222222222222222"
	appSpan        = "3333333333333333"
)

// TestTracesExportedOverOTLP runs a real gate (real JWKS, receiver, queue
// store, vendor and token endpoint) with tracing to a real OTLP/HTTP
// receiver and checks what it exported: a span tree per request with the
// route, decision and status; verification (cache miss, issuer), the
// JWKS fetch an unknown kid causes, the replay claim, the queued
// delivery linked to the request that stored it, the egress token and
// upstream spans; a sender's traceparent from an untrusted peer is linked,
// never the parent, and is not forwarded; a trusted proxy's is the
// parent; the access log carries the ids; and no token, secret or
// signature appears anywhere in the exported bytes.
func TestTracesExportedOverOTLP(t *testing.T) {
	otlp := newOTLPReceiver(t)
	idp := verifiertest.New()
	t.Cleanup(idp.Close)
	recv := newRecorder(t)
	intro := verifiertest.NewIntrospector()
	t.Cleanup(intro.Close)
	const opaque = "opaque-partner-token-0123456789"
	intro.Add(opaque, verifiertest.ActiveClaims("webhooks:write", time.Hour))
	tokens, vend := vendor(t, egressSecret, time.Hour)
	t.Setenv("TG_TEST_EGRESS_SECRET", egressSecret)
	t.Setenv("GH_TRACED", "traced-github-secret")
	t.Setenv("TG_TEST_INTROSPECTION_SECRET", intro.ClientSecret)
	path := write(t, t.TempDir(), "tokengate.yaml", fmt.Sprintf(`
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
shutdown_grace: 5s
upstream: %s
issuers:
  - { name: idp, issuer: %s, audiences: [%s] }
  - name: partner
    audiences: [%s]
    introspection: { url: %s, client_id: %s, client_secret: "${TG_TEST_INTROSPECTION_SECRET}" }
queue: { store: "file://%s" }
routes:
  - { name: hooks, path_prefix: /hooks/bearer, require: { issuers: [idp], scopes: ["webhooks:write"] } }
  - { name: partner, path_prefix: /hooks/partner, require: { issuers: [partner] } }
  - name: gh
    path: /hooks/gh
    signature: { scheme: github, secrets: ["${GH_TRACED}"] }
    delivery: { mode: queued }
egress:
  - name: vendor
    listen: 127.0.0.1:0
    upstream: %s
    insecure_http: true
    token: { url: %s, client_id: client, client_secret: "${TG_TEST_EGRESS_SECRET}" }
telemetry:
  tracing:
    endpoint: %s
    sampler: always_on
    service_name: tokengate-test
    trust_incoming: [127.0.0.2]
`, recv.URL, idp.Issuer(), testAud, testAud, intro.URL(), intro.ClientID, t.TempDir(), vend.URL, tokens.URL, otlp.URL))
	core, logs := observer.New(zap.InfoLevel)
	g, err := startWith(t.Context(), path, Options{Logger: zap.New(core), QueueCheckEvery: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = g.Shutdown(context.Background())
		}
	})
	eventually(t, "the gate to be ready (JWKS and the egress token)", func() bool { return g.Ready() == nil })
	pub := "http://" + g.Addr()

	// 1: a sender on the internet chooses a trace id.
	tok1 := idp.Mint(idp.Claims(testAud, "webhooks:write"))
	send := func(c *http.Client, url, token, tp string, h http.Header, body string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		for k, v := range h {
			req.Header[k] = v
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		req.Header.Set("Traceparent", tp)
		req.Header.Set("Tracestate", "sender=chosen")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	spoof := http.Header{"X-Forwarded-For": {"203.0.113.9"}, "User-Agent": {strings.Repeat("u", 64<<10)}}
	if resp := send(clientFrom("127.0.0.1"), pub+"/hooks/bearer/x", tok1, "00-"+untrustedTrace+"-"+senderSpan+"-01", spoof, "{}"); resp.StatusCode != 200 {
		t.Fatalf("untrusted bearer request: %d", resp.StatusCode)
	}
	fwd1, _ := recv.last()
	// 2: a trusted proxy's trace, with a token of a key the gate has not
	// fetched yet (its JWKS fetch is part of the request).
	idp.Rotate(jose.ES256, false)
	tok2 := idp.Mint(idp.Claims(testAud, "webhooks:write"))
	if resp := send(clientFrom("127.0.0.2"), pub+"/hooks/bearer/y", tok2, "00-"+trustedTrace+"-"+proxySpan+"-01", nil, "{}"); resp.StatusCode != 200 {
		t.Fatalf("trusted bearer request: %d", resp.StatusCode)
	}
	fwd2, _ := recv.last()
	// 2b: an opaque token, introspected.
	if resp := send(clientFrom("127.0.0.1"), pub+"/hooks/partner", opaque, "00-"+untrustedTrace+"-"+senderSpan+"-01", nil, "{}"); resp.StatusCode != 200 {
		t.Fatalf("introspected request: %d", resp.StatusCode)
	}
	// 3: a signed webhook, queued, delivered later.
	ghBody := `{"action":"traced"}`
	ghSig := githubHeaders("traced-github-secret", "d-traced-1", ghBody)
	if resp := send(clientFrom("127.0.0.1"), pub+"/hooks/gh", "", "00-"+untrustedTrace+"-"+senderSpan+"-01", ghSig, ghBody); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("queued request: %d", resp.StatusCode)
	}
	var delivered *http.Request
	eventually(t, "the queued message to be delivered", func() bool {
		recv.mu.Lock()
		defer recv.mu.Unlock()
		for _, r := range recv.seen {
			if r.URL.Path == "/hooks/gh" {
				delivered = r
			}
		}
		return delivered != nil
	})
	// 4: an app's egress request, in the app's trace.
	if resp := send(http.DefaultClient, "http://"+g.EgressAddrs()["vendor"]+"/orders", "", "00-"+appTrace+"-"+appSpan+"-01", nil, "{}"); resp.StatusCode != 200 {
		t.Fatalf("egress request: %d", resp.StatusCode)
	}
	seen := vend.Seen()
	if err := g.Shutdown(context.Background()); err != nil { // exports what is queued
		t.Fatal(err)
	}
	stopped = true

	all, raw := otlp.exported()
	s := spanSet(all)
	t.Logf("exported spans:%s", s)
	secrets := []string{tok1, tok2, opaque, intro.ClientSecret, egressSecret, "traced-github-secret", ghSig.Get("X-Hub-Signature-256"), strings.TrimPrefix(ghSig.Get("X-Hub-Signature-256"), "sha256=")}
	for _, v := range seen {
		secrets = append(secrets, v.Token)
	}
	secrets = append(secrets, strings.Split(tok1, ".")...) // no part of a token either (its claims, its signature)
	for _, sec := range secrets {
		if sec != "" && strings.Contains(string(raw), sec) {
			t.Errorf("the exported bytes hold a token, secret or signature: %.20q…", sec)
		}
	}

	// 1: a new trace, linked to the sender's; the receiver gets ours.
	srv1 := s.named(t, "POST hooks", func(sp *tracepb.Span) bool {
		return len(sp.Links) == 1 && hex.EncodeToString(sp.Links[0].TraceId) == untrustedTrace && sp.Kind == tracepb.Span_SPAN_KIND_SERVER
	})
	tr1, _ := ids(srv1)
	if tr1 == untrustedTrace || len(srv1.ParentSpanId) != 0 {
		t.Errorf("an untrusted sender's traceparent became the parent: trace %s parent %x", tr1, srv1.ParentSpanId)
	}
	if hex.EncodeToString(srv1.Links[0].SpanId) != senderSpan || srv1.Links[0].TraceState != "" {
		t.Errorf("the link is to span %x with tracestate %q, want the sender's %s and none of its tracestate", srv1.Links[0].SpanId, srv1.Links[0].TraceState, senderSpan)
	}
	if ua := attrs(srv1)["user_agent.original"]; len(ua) > 256 {
		t.Errorf("a sender's 64 KiB User-Agent is held in the span (%d bytes): every queued span could hold that much", len(ua))
	}
	wantAttrs(t, srv1, map[string]string{"tokengate.route": "hooks", "tokengate.decision": proxy.DecisionAllow, "http.response.status_code": "200",
		"tokengate.issuer": "idp", "client.address": "127.0.0.1"}) // not the X-Forwarded-For of an untrusted peer
	v1 := s.childOf(t, srv1, "verify")
	wantAttrs(t, v1, map[string]string{"tokengate.cache": "miss", "tokengate.issuer": "idp", "tokengate.result": "valid"})
	up1 := s.childOf(t, srv1, "upstream")
	wantAttrs(t, up1, map[string]string{"http.response.status_code": "200"})
	fwdTrace, fwdParent := traceparent(t, fwd1.Header.Get("Traceparent"))
	if _, upSpan := ids(up1); fwdTrace != tr1 || fwdParent != upSpan {
		t.Errorf("the receiver got traceparent %q, want trace %s, parent %s (the upstream span)", fwd1.Header.Get("Traceparent"), tr1, upSpan)
	}
	if ts := fwd1.Header.Get("Tracestate"); ts != "" {
		t.Errorf("the sender's tracestate reached the receiver: %q", ts)
	}

	// 2: the trusted proxy's trace goes on.
	srv2 := s.named(t, "POST hooks", func(sp *tracepb.Span) bool { return hex.EncodeToString(sp.TraceId) == trustedTrace })
	if p := hex.EncodeToString(srv2.ParentSpanId); p != proxySpan || len(srv2.Links) != 0 {
		t.Errorf("a trusted proxy's traceparent is not the parent: parent %s, links %d", p, len(srv2.Links))
	}
	v2 := s.childOf(t, srv2, "verify")
	wantAttrs(t, s.childOf(t, v2, "jwks.fetch"), map[string]string{"tokengate.issuer": "idp", "tokengate.result": "fetched"})
	if tr, _ := traceparent(t, fwd2.Header.Get("Traceparent")); tr != trustedTrace {
		t.Errorf("the receiver got trace %s, want the trusted proxy's %s", tr, trustedTrace)
	}
	if ts := fwd2.Header.Get("Tracestate"); ts != "sender=chosen" {
		t.Errorf("a trusted proxy's tracestate was not passed on: %q", ts)
	}

	// 2b: the introspection call is the verification's child.
	srvP := s.named(t, "POST partner", nil)
	vP := s.childOf(t, srvP, "verify")
	wantAttrs(t, vP, map[string]string{"tokengate.cache": "miss", "tokengate.issuer": "partner"})
	wantAttrs(t, s.childOf(t, vP, "introspection"), map[string]string{"tokengate.issuer": "partner", "tokengate.result": "active"})

	// 3: the queued webhook: claim, store; the delivery links back.
	srv3 := s.named(t, "POST gh", nil)
	wantAttrs(t, srv3, map[string]string{"tokengate.decision": proxy.DecisionQueued, "http.response.status_code": "202"})
	wantAttrs(t, s.childOf(t, srv3, "replay.claim"), map[string]string{"tokengate.result": "claimed", "tokengate.route": "gh"})
	wantAttrs(t, s.childOf(t, srv3, "queue.store"), map[string]string{"tokengate.result": "stored", "tokengate.route": "gh"})
	del := s.named(t, "deliver gh", nil)
	wantAttrs(t, del, map[string]string{"tokengate.attempt": "1", "tokengate.result": "delivered", "http.response.status_code": "200"})
	tr3, sp3 := ids(srv3)
	if len(del.Links) != 1 || hex.EncodeToString(del.Links[0].TraceId) != tr3 || hex.EncodeToString(del.Links[0].SpanId) != sp3 || len(del.ParentSpanId) != 0 {
		t.Errorf("the delivery span is not a root linked to the request that stored it: %s", spanSet{del})
	}
	dtr, dsp := ids(del)
	if gtr, gsp := traceparent(t, delivered.Header.Get("Traceparent")); gtr != dtr || gsp != dsp {
		t.Errorf("the receiver got the queued message with traceparent %q, want the delivery span's %s-%s", delivered.Header.Get("Traceparent"), dtr, dsp)
	}

	// 4: the app's trace goes through the egress to the vendor.
	eg := s.named(t, "POST egress vendor", nil)
	wantAttrs(t, eg, map[string]string{"tokengate.egress": "vendor", "http.response.status_code": "200"})
	if tr, _ := ids(eg); tr != appTrace || hex.EncodeToString(eg.ParentSpanId) != appSpan {
		t.Errorf("the egress span is not the app's child: trace %s parent %x", tr, eg.ParentSpanId)
	}
	wantAttrs(t, s.childOf(t, eg, "token"), map[string]string{"tokengate.egress": "vendor", "tokengate.cache": "hit", "tokengate.result": "ok"})
	up4 := s.childOf(t, eg, "upstream")
	wantAttrs(t, up4, map[string]string{"tokengate.egress": "vendor", "http.response.status_code": "200"})
	wantAttrs(t, s.named(t, "token request", nil), map[string]string{"tokengate.egress": "vendor", "tokengate.result": "success"})
	last := seen[len(seen)-1]
	if tr, p := traceparent(t, last.Header.Get("Traceparent")); tr != appTrace || p != hex.EncodeToString(up4.SpanId) {
		t.Errorf("the vendor got traceparent %q, want the app's trace and the upstream span", last.Header.Get("Traceparent"))
	}

	// The access log names the trace.
	var line map[string]any
	for _, e := range logs.FilterMessage("request").All() {
		if f := e.ContextMap(); f["route"] == "hooks" && f["trace_id"] == tr1 {
			line = f
		}
	}
	if line == nil || line["span_id"] != hex.EncodeToString(srv1.SpanId) {
		t.Errorf("no access-log line with the request's trace_id and span_id: %v", line)
	}
	if e := logs.FilterMessage("egress request").All(); len(e) == 0 || e[len(e)-1].ContextMap()["trace_id"] != appTrace {
		t.Errorf("the egress access log lacks the trace id: %v", e)
	}
}

// TestTracingOffWrapsNothing: without a telemetry.tracing block or an
// OTEL_EXPORTER_OTLP_*ENDPOINT variable, the listeners serve the bare
// proxy and egress handlers (no otelhttp handler, no span); with the
// block, they are wrapped.
func TestTracingOffWrapsNothing(t *testing.T) {
	idp := verifiertest.New()
	t.Cleanup(idp.Close)
	tokens, vend := vendor(t, egressSecret, time.Hour)
	t.Setenv("TG_TEST_EGRESS_SECRET", egressSecret)
	yaml := func(extra string) string {
		return fmt.Sprintf(`
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream: http://127.0.0.1:9
issuers: [{ name: idp, issuer: %s, audiences: [%s] }]
routes: [{ name: hooks, path_prefix: /hooks }]
egress:
  - name: vendor
    listen: 127.0.0.1:0
    upstream: %s
    insecure_http: true
    token: { url: %s, client_id: client, client_secret: "${TG_TEST_EGRESS_SECRET}" }
%s`, idp.Issuer(), testAud, vend.URL, tokens.URL, extra)
	}
	noEnv := func(string) string { return "" }
	for _, tc := range []struct {
		name, extra string
		traced      bool
	}{
		{"off", "", false},
		{"on", "telemetry: { tracing: { endpoint: http://127.0.0.1:9 } }\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := write(t, t.TempDir(), "tokengate.yaml", yaml(tc.extra))
			g, err := startWith(t.Context(), path, Options{Getenv: noEnv})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = g.Shutdown(context.Background()) })
			_, bare := g.cur.Load().Handler().(*proxy.Handler)
			g.eg.mu.Lock()
			_, bareEgress := g.eg.runners["vendor"].handler.(*egress.Handler)
			g.eg.mu.Unlock()
			if bare == tc.traced || bareEgress == tc.traced || (g.tr != nil) != tc.traced {
				t.Fatalf("tracing %v: public handler bare %v, egress handler bare %v, tracing set up %v", tc.traced, bare, bareEgress, g.tr != nil)
			}
		})
	}
}
