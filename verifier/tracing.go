package verifier

import (
	"errors"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/tokengate/tokengate/internal/spans"
)

// Span results: a verification, an introspection call or a JWKS fetch.
const (
	resultValid       = "valid"
	resultInvalid     = "invalid"
	resultUnavailable = "unavailable"
	resultActive      = "active"
	resultNotModified = "not_modified"
	resultFetched     = "fetched"
)

// endVerify records how a verification was answered (hit, miss,
// negative_hit), its issuer and its result; never the token or a claim.
func endVerify(span trace.Span, how string, p *Principal, err error) {
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(spans.Cache.String(how), spans.Result.String(verdict(err)))
	if p != nil {
		span.SetAttributes(spans.Issuer.String(p.Source))
	}
	if errors.Is(err, ErrUnavailable) {
		span.SetStatus(codes.Error, resultUnavailable)
	}
	span.End()
}

func verdict(err error) string {
	switch {
	case err == nil:
		return resultValid
	case errors.Is(err, ErrUnavailable):
		return resultUnavailable
	}
	return resultInvalid
}

// endCall records an introspection call's or a JWKS fetch's result with
// the issuer's name; never the error's text (it may hold a URL).
func endCall(span trace.Span, issuer, result string) {
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(spans.Issuer.String(issuer), spans.Result.String(result))
	if result == resultUnavailable {
		span.SetStatus(codes.Error, result)
	}
	span.End()
}
