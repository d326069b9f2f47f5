package signature

import "errors"

// Sentinels every refusal matches, one per HTTP answer.
var (
	// ErrRefused: the signature is missing, malformed, wrong or too old
	// (→ 401).
	ErrRefused = errors.New("signature refused")
	// ErrDuplicate: the message was already delivered (the receiver
	// answered 2xx) within the replay window (→ 200, not forwarded: the
	// sender is authentic, and any other answer would make it retry or
	// disable the hook).
	ErrDuplicate = errors.New("duplicate message")
	// ErrInFlight: the message is being delivered by another request
	// (→ 409 with Retry-After: its outcome is not known yet).
	ErrInFlight = errors.New("message in flight")
	// ErrStoreUnavailable: the replay store could not be asked (→ 503 with
	// Retry-After; never a silent pass unless the route fails open).
	ErrStoreUnavailable = errors.New("replay store unavailable")
)

// Reasons are the sender-safe descriptions of a refusal; Label turns one
// into a metric label.
const (
	ReasonMissing     = "signature missing"
	ReasonMalformed   = "signature malformed"
	ReasonMismatch    = "signature mismatch"
	ReasonTimestamp   = "timestamp outside tolerance"
	ReasonDuplicate   = "duplicate message"
	ReasonInFlight    = "message in flight"
	ReasonUnavailable = "replay store unavailable"
	ReasonFull        = "replay store full"
)

// Error is a refusal with a fixed, sender-safe reason: it never holds the
// secret, the signature or the body.
type Error struct {
	// Reason is one of the Reason… constants.
	Reason string
	// Cause is the underlying error (a store's), for logs; nil otherwise.
	Cause error
	kind  error
}

// Error returns the reason, and the cause when there is one.
func (e *Error) Error() string {
	if e.Cause != nil {
		return e.Reason + ": " + e.Cause.Error()
	}
	return e.Reason
}

// Is matches the sentinel of the refusal's kind.
func (e *Error) Is(target error) bool { return target == e.kind }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// Label is the reason as a metric label value ("signature_mismatch").
func Label(err error) string {
	var e *Error
	if !errors.As(err, &e) {
		return "error"
	}
	b := []byte(e.Reason)
	for i, c := range b {
		if c == ' ' {
			b[i] = '_'
		}
	}
	return string(b)
}

func refused(reason string) error { return &Error{Reason: reason, kind: ErrRefused} }
