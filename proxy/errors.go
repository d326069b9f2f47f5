package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/ratelimit"
	"github.com/tokengate/tokengate/signature"
	"github.com/tokengate/tokengate/verifier"
)

// Errors the handler raises; status() maps each, and the verifier's, to
// one HTTP answer. This is the only place a status is chosen for an error.
var (
	errNoRoute            = errors.New("no route")
	errNoCredentials      = errors.New("no bearer token")
	errMalformed          = errors.New("malformed request")
	errTokenInQuery       = errors.New("access_token in the query string")
	errEncodedSlash       = errors.New("encoded slash or backslash in path")
	errPathParameter      = errors.New("path parameters (;) are not accepted")
	errUpgrade            = errors.New("protocol upgrades are not accepted on this route")
	errWrongIssuer        = errors.New("token from an issuer this route does not accept")
	errInsufficientScope  = errors.New("insufficient scope")
	errTooLarge           = errors.New("request body too large")
	errUpstreamTimeout    = errors.New("upstream timeout")
	errUpstream           = errors.New("upstream unreachable")
	errClientGone         = errors.New("client went away")
	errBodyTimeout        = errors.New("request body not received in time")
	errClientCertRequired = errors.New("a verified client certificate is required")
)

// Decisions recorded in access logs and metrics.
const (
	DecisionAllow       = "allow"
	DecisionPublic      = "public"
	DecisionNoRoute     = "no_route"
	DecisionNoToken     = "no_token"
	DecisionBadRequest  = "bad_request"
	DecisionInvalid     = "invalid_token"
	DecisionForbidden   = "insufficient_scope"
	DecisionUnavailable = "unavailable"
	DecisionError       = "error"
	// DecisionBadSignature: a signed webhook's signature is missing,
	// wrong or too old.
	DecisionBadSignature = "invalid_signature"
	// DecisionReplayed: a copy of a signed webhook still being delivered
	// (409).
	DecisionReplayed = "replayed"
	// DecisionDuplicate: a copy of a signed webhook already delivered
	// (200, not forwarded).
	DecisionDuplicate = "duplicate"
)

// signatureReason is a signature refusal's sender-safe reason.
func signatureReason(err error) string {
	var se *signature.Error
	if errors.As(err, &se) {
		return se.Reason
	}
	return "signature refused"
}

// answer is how one error is told to the sender.
type answer struct {
	status   int
	code     string // RFC 6750 / RFC 6749 error code, "" for none
	desc     string
	decision string
	bearer   bool // send a WWW-Authenticate: Bearer challenge
}

// classify maps an error to its answer.
func classify(err error) answer {
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, errNoRoute):
		return answer{http.StatusNotFound, "not_found", "no route for this method and path", DecisionNoRoute, false}
	case errors.Is(err, errNoCredentials):
		return answer{http.StatusUnauthorized, "", noCredentialsText(err), DecisionNoToken, true}
	case errors.Is(err, errMalformed), errors.Is(err, errTokenInQuery), errors.Is(err, errEncodedSlash), errors.Is(err, errPathParameter):
		return answer{http.StatusBadRequest, "invalid_request", describe(err), DecisionBadRequest, true}
	case errors.Is(err, ErrForwardedFor):
		return answer{http.StatusBadRequest, "invalid_request", ErrForwardedFor.Error(), DecisionBadRequest, false}
	case errors.Is(err, errUpgrade):
		return answer{http.StatusBadRequest, "invalid_request", errUpgrade.Error(), DecisionBadRequest, false}
	case errors.Is(err, errWrongIssuer):
		return answer{http.StatusUnauthorized, "invalid_token", "token not accepted on this route", DecisionInvalid, true}
	case errors.Is(err, errClientCertRequired):
		return answer{http.StatusForbidden, "client_certificate_required", "this route requires a TLS client certificate it accepts", DecisionForbidden, false}
	case errors.Is(err, errInsufficientScope):
		return answer{http.StatusForbidden, "insufficient_scope", "the token does not grant what this route requires", DecisionForbidden, true}
	case errors.Is(err, signature.ErrRefused):
		return answer{http.StatusUnauthorized, "invalid_signature", signatureReason(err), DecisionBadSignature, false}
	case errors.Is(err, signature.ErrDuplicate):
		return answer{http.StatusOK, "duplicate", "already delivered; not forwarded again", DecisionDuplicate, false}
	case errors.Is(err, signature.ErrInFlight):
		return answer{http.StatusConflict, "message_in_flight", "the same message is being delivered; retry later", DecisionReplayed, false}
	case errors.Is(err, signature.ErrStoreUnavailable):
		return answer{http.StatusServiceUnavailable, "temporarily_unavailable", "replay store unavailable; retry later", DecisionUnavailable, false}
	case errors.Is(err, errQueueFull):
		return answer{http.StatusServiceUnavailable, "temporarily_unavailable", "the delivery queue is full; retry later", DecisionUnavailable, false}
	case errors.Is(err, errQueueUnavailable):
		return answer{http.StatusServiceUnavailable, "temporarily_unavailable", "the message cannot be stored right now; retry later", DecisionUnavailable, false}
	case errors.Is(err, errClientBudget):
		return answer{http.StatusServiceUnavailable, "temporarily_unavailable", "too many request bodies in flight from this client; retry later", DecisionUnavailable, false}
	case errors.Is(err, errBodyBudget):
		return answer{http.StatusServiceUnavailable, "temporarily_unavailable", "too many request bodies in flight; retry later", DecisionUnavailable, false}
	case errors.Is(err, ErrNoSenderIdentity):
		return answer{http.StatusForbidden, DecisionNoSenderIdentity, ErrNoSenderIdentity.Error(), DecisionNoSenderIdentity, false}
	case errors.Is(err, errRateLimited):
		return answer{http.StatusTooManyRequests, "rate_limited", "too many requests from this sender on this route; retry after the time in Retry-After", DecisionRateLimited, false}
	case errors.Is(err, verifier.ErrUnavailable):
		return answer{http.StatusServiceUnavailable, "temporarily_unavailable", "the token cannot be checked right now; retry later", DecisionUnavailable, false}
	case errors.Is(err, verifier.ErrInvalidToken):
		desc := verifier.Reason(err)
		if desc == "" {
			desc = "invalid token"
		}
		return answer{http.StatusUnauthorized, "invalid_token", desc, DecisionInvalid, true}
	case errors.Is(err, errTooLarge), errors.As(err, &mbe):
		return answer{http.StatusRequestEntityTooLarge, "request_too_large", "the request body is larger than allowed", DecisionError, false}
	case errors.Is(err, errUpstreamTimeout):
		return answer{http.StatusGatewayTimeout, "upstream_timeout", "the receiver did not answer in time", DecisionError, false}
	case errors.Is(err, errBodyTimeout):
		return answer{http.StatusRequestTimeout, "request_timeout", "the request body was not received in time", DecisionError, false}
	case errors.Is(err, errClientGone):
		return answer{499, "invalid_request", "the request body ended before it was complete", DecisionError, false}
	default:
		return answer{http.StatusBadGateway, "upstream_unavailable", "the receiver cannot be reached", DecisionError, false}
	}
}

// retryAfterOf is the Retry-After a refusal carries of its own (a rate
// limit's wait, in whole seconds rounded up, at least 1), or "".
func retryAfterOf(err error) string {
	if rl, ok := errors.AsType[*rateLimitedError](err); ok {
		return ratelimit.RetryAfter(rl.wait)
	}
	return ""
}

// describe is the text after the sentinel, e.g. "more than one
// Authorization header"; sentinels themselves describe fixed cases.
func describe(err error) string {
	s := err.Error()
	if i := strings.Index(s, ": "); i >= 0 && errors.Is(err, errMalformed) {
		return s[i+2:]
	}
	return s
}

// upstreamError turns a failed round trip into one of ours. bodyErr, when
// set, is why reading the sender's body failed: then the fault is the
// sender's (413, 408, gone), whatever the transport made of it.
func upstreamError(err, bodyErr error) error {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(bodyErr, &mbe), errors.As(err, &mbe):
		return errTooLarge
	case bodyErr != nil && isTimeout(bodyErr):
		return errBodyTimeout
	case bodyErr != nil, errors.Is(err, context.Canceled):
		return errClientGone
	case isTimeout(err):
		return errUpstreamTimeout
	default:
		return errUpstream
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// writeAnswer renders an answer: RFC 6750 challenge and a JSON body that
// never echoes the token.
func (h *Handler) writeAnswer(w http.ResponseWriter, a answer, r *route) {
	hd := w.Header()
	if a.status == 499 {
		// Logged as 499 (client went away). A sender that only half-closed
		// still reads: it gets 400, never the 200 net/http sends for a
		// handler that writes nothing (nothing was forwarded or stored).
		hd.Set("Connection", "close")
		a.status = http.StatusBadRequest
	}
	if a.bearer {
		var b strings.Builder
		b.WriteString(`Bearer realm="`)
		b.WriteString(h.realm)
		b.WriteByte('"')
		if a.code != "" {
			b.WriteString(`, error="`)
			b.WriteString(a.code)
			b.WriteString(`", error_description="`)
			b.WriteString(quotable(a.desc))
			b.WriteByte('"')
		}
		if a.status == http.StatusForbidden && r != nil && r.scopeHint != "" {
			b.WriteString(`, scope="`)
			b.WriteString(quotable(r.scopeHint))
			b.WriteByte('"')
		}
		hd.Set("WWW-Authenticate", b.String())
	}
	if a.status == http.StatusServiceUnavailable || a.status == http.StatusConflict {
		hd.Set("Retry-After", h.retryAfter)
	}
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(a.status)
	code := a.code
	if code == "" {
		code = "unauthorized"
	}
	if a.status < 300 { // a duplicate: answered, not an error
		body, _ := json.Marshal(struct {
			Result      string `json:"result"`
			Description string `json:"description"`
		}{code, a.desc})
		_, _ = w.Write(append(body, '\n'))
		return
	}
	body, _ := json.Marshal(struct {
		Error       string `json:"error"`
		Description string `json:"error_description,omitempty"`
	}{code, a.desc})
	_, _ = w.Write(append(body, '\n'))
}

// quotable keeps only the characters RFC 6750 §3 allows inside
// error_description and scope: %x20-21 / %x23-5B / %x5D-7E.
func quotable(s string) string {
	return strings.Map(func(r rune) rune {
		if r == 0x20 || r == 0x21 || (r >= 0x23 && r <= 0x5B) || (r >= 0x5D && r <= 0x7E) {
			return r
		}
		return '_'
	}, s)
}

func retryAfterValue(seconds float64) string {
	return strconv.Itoa(max(int(seconds+0.5), 1))
}

// noCredentialsError: a route that takes a bearer token or a signature
// (auth: any) got neither.
type noCredentialsError struct{ scheme string }

func (e *noCredentialsError) Error() string {
	return "a bearer token or a " + e.scheme + " signature is required"
}

func (e *noCredentialsError) Unwrap() error { return errNoCredentials }

// noCredentialsText says what the route would have taken.
func noCredentialsText(err error) string {
	if nc, ok := errors.AsType[*noCredentialsError](err); ok {
		return nc.Error()
	}
	return "a bearer token is required"
}

// upstreamFailed answers a request whose round trip to the receiver failed.
func (h *Handler) upstreamFailed(w http.ResponseWriter, r *http.Request, err error) {
	st, _ := r.Context().Value(stateKey{}).(*state)
	var bodyErr error
	if st != nil {
		if be := st.bodyErr.Load(); be != nil {
			bodyErr = *be
			w.Header().Set("Connection", "close") // the rest of the body is not read
		}
	}
	e := upstreamError(err, bodyErr)
	if st != nil {
		st.err = e
	}
	if !errors.Is(e, errClientGone) {
		h.log.Warn("upstream request failed", zap.Error(err))
	}
	var rt *route
	if st != nil {
		rt = st.route
	}
	h.writeAnswer(w, classify(e), rt)
}
