// Package spans starts tokengate's OpenTelemetry spans inside the
// packages that do the work (verifier, signature, egress, queue, proxy),
// which never see the SDK: a child span takes the tracer provider of the
// span already in its context, so nothing is wired, and with tracing off
// (no span in the context) or a trace that is not sampled, Start returns
// the context unchanged and a no-op span without allocating.
//
// The attribute keys are the only ones tokengate sets: names from the
// configuration, fixed outcomes and status codes. No span ever carries a
// token, a secret, a signature, a message id or a claim other than the
// verified client id.
//
//	ctx, span := spans.Start(ctx, "tokengate.verify")
//	defer span.End()
//	if span.IsRecording() {
//		span.SetAttributes(spans.Cache.String("hit"))
//	}
package spans

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Scope is the instrumentation scope of tokengate's own spans.
const Scope = "github.com/tokengate/tokengate"

// Attribute keys of tokengate's spans.
const (
	// Route is the configured route's name.
	Route = attribute.Key("tokengate.route")
	// Decision is the proxy's decision (proxy.Decision… constants).
	Decision = attribute.Key("tokengate.decision")
	// Issuer is a configured issuer's name.
	Issuer = attribute.Key("tokengate.issuer")
	// ClientID is the verified token's client id.
	ClientID = attribute.Key("tokengate.client_id")
	// Cache is how a verification was answered: hit, miss, negative_hit.
	Cache = attribute.Key("tokengate.cache")
	// Result is an operation's outcome, from a fixed set per span.
	Result = attribute.Key("tokengate.result")
	// Egress is an egress entry's name.
	Egress = attribute.Key("tokengate.egress")
	// Joined says a JWKS fetch or token request was already running and
	// this request waited for it.
	Joined = attribute.Key("tokengate.joined")
	// Attempt counts a queued message's delivery attempts from 1.
	Attempt = attribute.Key("tokengate.attempt")
	// StatusCode is an HTTP status code (the OpenTelemetry name).
	StatusCode = attribute.Key("http.response.status_code")
	// Method is an HTTP method (the OpenTelemetry name).
	Method = attribute.Key("http.request.method")
	// ServerAddress is the host a request went to (the OpenTelemetry
	// name): never its path or query.
	ServerAddress = attribute.Key("server.address")
)

// noop is the span Start returns when it starts none.
var noop = trace.SpanFromContext(context.Background())

// Start starts a span named name as a child of the span in ctx, if that
// one is recording. Otherwise it returns ctx and a span that does
// nothing: tracing is off, or the trace is not sampled (every standard
// sampler would decide its children alike).
func Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return ctx, noop
	}
	return parent.TracerProvider().Tracer(Scope).Start(ctx, name, opts...)
}

// Root starts a span that begins a trace, for work no request waits for
// (a queued delivery, a background token request), with tp; tp nil:
// tracing is off, and the span does nothing.
func Root(ctx context.Context, tp trace.TracerProvider, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if tp == nil {
		return ctx, noop
	}
	return tp.Tracer(Scope).Start(ctx, name, append(opts, trace.WithNewRoot())...)
}

// Detached carries the span of ctx (only) into a context of its own, for
// work that a request starts but that must not end with it.
func Detached(ctx context.Context) context.Context {
	s := trace.SpanFromContext(ctx)
	if !s.IsRecording() {
		return context.Background()
	}
	return trace.ContextWithSpan(context.Background(), s)
}

// MethodName is an HTTP method fit for a span name: a standard method as
// it is, anything else (a sender may send any token) "HTTP".
func MethodName(m string) string {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE":
		return m
	}
	return "HTTP"
}
