package gate

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/tracehdr"
	"github.com/tokengate/tokengate/verifier/verifiertest"
)

// senderTraceHeaders is a sender's trace context and baggage in every
// tracing system's headers, some in underscore spellings, with a 57 KB
// baggage.
func senderTraceHeaders() http.Header {
	return http.Header{
		"Traceparent":           {"00-" + untrustedTrace + "-" + senderSpan + "-01"},
		"Tracestate":            {"sender=chosen"},
		"Baggage":               {"user=alice,blob=" + strings.Repeat("b", 57<<10)},
		"B3":                    {untrustedTrace + "-" + senderSpan + "-1"},
		"X-B3-Traceid":          {untrustedTrace},
		"X_b3_spanid":           {senderSpan},
		"X-B3-Parentspanid":     {senderSpan},
		"X-B3-Sampled":          {"1"},
		"X-B3-Flags":            {"1"},
		"Uber-Trace-Id":         {untrustedTrace + ":" + senderSpan + ":0:1"},
		"Uberctx-Tenant":        {"evil"},
		"Uberctx_user":          {"mallory"},
		"X-Cloud-Trace-Context": {untrustedTrace + "/1;o=1"},
		"X_amzn_trace_id":       {"Root=1-5759e988-bd862e3fe1be46a994272793"},
		"Grpc-Trace-Bin":        {"AAARf"},
		"Traceresponse":         {"00-" + untrustedTrace + "-" + senderSpan + "-01"},
		"Ot-Tracer-Traceid":     {untrustedTrace},
		"Ot-Tracer-Spanid":      {senderSpan},
		"Ot-Tracer-Sampled":     {"true"},
	}
}

// traceHeadersLeft lists the trace-context and baggage headers of h other
// than tokengate's own traceparent.
func traceHeadersLeft(h http.Header) []string {
	var left []string
	for k := range h {
		if tracehdr.IsTraceContext(k) && k != "Traceparent" {
			left = append(left, k)
		}
	}
	return left
}

// TestUntrustedSendersTraceHeadersNeverReachTheReceiver runs a real gate
// with tracing on: a sender outside trust_incoming sends a trace context
// and a 57 KB baggage in every tracing system's headers (any spelling);
// the receiver gets tokengate's traceparent and none of them, on a
// forwarded route and on a queued one (what is stored and delivered); a
// trusted peer's baggage passes; an app's egress request reaches the
// vendor with tokengate's traceparent only (no tracestate, no baggage,
// no other trace header). With tracing off, the public listener passes
// the headers as sent and the egress drops only the app's baggage.
func TestUntrustedSendersTraceHeadersNeverReachTheReceiver(t *testing.T) {
	for _, traced := range []bool{true, false} {
		t.Run(fmt.Sprintf("tracing %v", traced), func(t *testing.T) { untrustedTraceHeaders(t, traced) })
	}
}

func untrustedTraceHeaders(t *testing.T, traced bool) {
	otlp := newOTLPReceiver(t)
	idp := verifiertest.New()
	t.Cleanup(idp.Close)
	recv := newRecorder(t)
	tokens, vend := vendor(t, egressSecret, time.Hour)
	t.Setenv("TG_TEST_EGRESS_SECRET", egressSecret)
	t.Setenv("GH_TRACEHDR", "tracehdr-github-secret")
	tracing := ""
	if traced {
		tracing = fmt.Sprintf("telemetry: { tracing: { endpoint: %s, sampler: always_on, trust_incoming: [127.0.0.2] } }\n", otlp.URL)
	}
	path := write(t, t.TempDir(), "tokengate.yaml", fmt.Sprintf(`
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
shutdown_grace: 5s
upstream: %s
issuers: [{ name: idp, issuer: %s, audiences: [%s] }]
queue: { store: "file://%s" }
routes:
  - { name: hooks, path_prefix: /hooks/bearer, require: { issuers: [idp] } }
  - name: gh
    path: /hooks/gh
    signature: { scheme: github, secrets: ["${GH_TRACEHDR}"] }
    delivery: { mode: queued }
egress:
  - name: vendor
    listen: 127.0.0.1:0
    upstream: %s
    insecure_http: true
    token: { url: %s, client_id: client, client_secret: "${TG_TEST_EGRESS_SECRET}" }
%s`, recv.URL, idp.Issuer(), testAud, t.TempDir(), vend.URL, tokens.URL, tracing))
	g, err := startWith(t.Context(), path, Options{Getenv: func(string) string { return "" }, QueueCheckEvery: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Shutdown(context.Background()) })
	eventually(t, "the gate to be ready", func() bool { return g.Ready() == nil })
	pub := "http://" + g.Addr()
	send := func(c *http.Client, url string, h http.Header, body string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		for k, v := range h {
			req.Header[k] = v
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("POST %s: %d", url, resp.StatusCode)
		}
	}
	withToken := func(h http.Header) http.Header {
		h.Set("Authorization", "Bearer "+idp.Mint(idp.Claims(testAud)))
		return h
	}

	// An untrusted sender's forwarded request.
	send(clientFrom("127.0.0.1"), pub+"/hooks/bearer/x", withToken(senderTraceHeaders()), "{}")
	fwd, _ := recv.last()
	if traced {
		if left := traceHeadersLeft(fwd.Header); len(left) > 0 {
			t.Errorf("an untrusted sender's trace headers reached the receiver: %v", left)
		}
		if tr, _ := traceparent(t, fwd.Header.Get("Traceparent")); tr == untrustedTrace {
			t.Errorf("the receiver got the sender's trace id")
		}
	} else if fwd.Header.Get("Baggage") != senderTraceHeaders().Get("Baggage") || fwd.Header.Get("X-B3-Traceid") != untrustedTrace {
		t.Errorf("tracing off: the trace headers did not pass as sent: %v", fwd.Header)
	}

	// A trusted peer's baggage passes.
	if traced {
		h := withToken(http.Header{"Traceparent": {"00-" + trustedTrace + "-" + proxySpan + "-01"}, "Baggage": {"tenant=7"}})
		send(clientFrom("127.0.0.2"), pub+"/hooks/bearer/y", h, "{}")
		if fwd, _ := recv.last(); fwd.Header.Get("Baggage") != "tenant=7" {
			t.Errorf("a trusted peer's baggage did not pass: %q", fwd.Header.Get("Baggage"))
		}
	}

	// An untrusted sender's queued webhook: stored without them, so
	// delivered without them (the worker replaces only the traceparent).
	body := `{"action":"tracehdr"}`
	h := senderTraceHeaders()
	for k, v := range githubHeaders("tracehdr-github-secret", "d-tracehdr-1", body) {
		h[k] = v
	}
	send(clientFrom("127.0.0.1"), pub+"/hooks/gh", h, body)
	var delivered *http.Request
	eventually(t, "the queued webhook to be delivered", func() bool {
		recv.mu.Lock()
		defer recv.mu.Unlock()
		for _, r := range recv.seen {
			if r.URL.Path == "/hooks/gh" {
				delivered = r
			}
		}
		return delivered != nil
	})
	if left := traceHeadersLeft(delivered.Header); traced && len(left) > 0 {
		t.Errorf("an untrusted sender's trace headers were stored and delivered: %v", left)
	}

	// An app's egress request.
	app := http.Header{"Traceparent": {"00-" + appTrace + "-" + appSpan + "-01"}, "Tracestate": {"internal=state"},
		"Baggage": {"user=alice"}, "Uberctx-Tenant": {"7"}, "B3": {appTrace + "-" + appSpan + "-1"}}
	send(http.DefaultClient, "http://"+g.EgressAddrs()["vendor"]+"/orders", app, "{}")
	seen := vend.Seen()
	got := seen[len(seen)-1].Header
	if got.Get("Baggage") != "" || got.Get("Uberctx-Tenant") != "" {
		t.Errorf("the app's baggage reached the vendor: %q %q", got.Get("Baggage"), got.Get("Uberctx-Tenant"))
	}
	if traced {
		if left := traceHeadersLeft(got); len(left) > 0 {
			t.Errorf("the app's trace headers other than tokengate's traceparent reached the vendor: %v", left)
		}
		if tr, _ := traceparent(t, got.Get("Traceparent")); tr != appTrace {
			t.Errorf("the vendor got trace %s, want the app's %s", tr, appTrace)
		}
	} else if got.Get("Traceparent") != app.Get("Traceparent") || got.Get("B3") != app.Get("B3") {
		t.Errorf("tracing off: the app's trace ids did not pass as sent: %v", got)
	}
}
