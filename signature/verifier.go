package signature

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/tokengate/tokengate/internal/spans"
)

// DefaultTolerance is how far a signed timestamp may be from now; a
// message is remembered against replays for twice as long.
const DefaultTolerance = 5 * time.Minute

// DefaultLease is how long a claimed message stays in flight, by default,
// before the store lets it go by itself.
const DefaultLease = time.Minute

// Options configure one route's Verifier.
type Options struct {
	// Scheme is one of Schemes.
	Scheme string
	// Route names the route: replay keys are scoped by it, so one message
	// fanned out to two routes is delivered on each.
	Route string
	// Secrets are the shared secrets (several during a rotation), as the
	// sender shows them: see decodeSecrets for each scheme's form.
	Secrets []string
	// Tolerance bounds |now - signed timestamp|; a delivered message is
	// remembered for twice as long (the replay window). Default
	// DefaultTolerance.
	Tolerance time.Duration
	// Store, when set, catches a copy of a message within the window.
	Store Store
	// Lease is how long a claimed message stays in flight before the
	// store lets it go by itself (the gate crashed, or lost the store,
	// while delivering it): longer than any delivery takes. Default
	// DefaultLease, at most the replay window.
	Lease time.Duration
	// FailOpen lets a message through unchecked for replays when Store
	// fails (the Receipt says so); by default such a message is refused
	// with ErrStoreUnavailable.
	FailOpen bool
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Verifier checks one route's signed webhooks.
type Verifier struct {
	scheme    string
	route     string
	keys      keys
	tolerance time.Duration
	lease     time.Duration
	store     Store
	failOpen  bool
	now       func() time.Time
	sch       scheme
}

// New decodes the secrets and returns a Verifier.
func New(o Options) (*Verifier, error) {
	v := &Verifier{scheme: o.Scheme, route: o.Route, tolerance: o.Tolerance, lease: o.Lease, store: o.Store, failOpen: o.FailOpen, now: o.Now}
	var ok bool
	if v.sch, ok = schemes[o.Scheme]; !ok {
		return nil, fmt.Errorf("signature: unknown scheme %q (one of %v)", o.Scheme, Schemes)
	}
	if len(o.Secrets) == 0 {
		return nil, errors.New("signature: no secrets")
	}
	var err error
	if v.keys, err = decodeSecrets(o.Scheme, o.Secrets); err != nil {
		return nil, fmt.Errorf("signature: %s: %w", o.Scheme, err)
	}
	if v.tolerance <= 0 {
		v.tolerance = DefaultTolerance
	}
	if v.lease <= 0 {
		v.lease = DefaultLease
	}
	v.lease = min(v.lease, v.window())
	if v.now == nil {
		v.now = time.Now
	}
	return v, nil
}

// CheckHeaders judges what a request's headers alone can tell, before its
// body is read: the signature header is there and parses for the scheme
// (prefix, encoding, length), and, where the scheme signs one, the
// timestamp is within the tolerance. The error is an *Error matching
// ErrRefused.
func (v *Verifier) CheckHeaders(h http.Header) error {
	o, err := v.sch.read(h)
	if err != nil {
		return err
	}
	return v.checkTime(o)
}

func (v *Verifier) checkTime(o offered) error {
	if !o.at.IsZero() {
		if d := v.now().Sub(o.at); d > v.tolerance || d < -v.tolerance {
			return refused(ReasonTimestamp)
		}
	}
	return nil
}

// Verify checks the headers (as CheckHeaders), the signature of the
// complete body, then (with a Store) that the message is new, and claims
// it. The error is an *Error matching ErrRefused, ErrDuplicate,
// ErrInFlight or ErrStoreUnavailable.
func (v *Verifier) Verify(ctx context.Context, h http.Header, body []byte) (*Receipt, error) {
	o, err := v.sch.read(h)
	if err != nil {
		return nil, err
	}
	if err := v.checkTime(o); err != nil {
		return nil, err
	}
	identity, ok := v.sch.verify(v.keys, o, body)
	if !ok {
		return nil, refused(ReasonMismatch)
	}
	key := v.replayKey(identity)
	if v.store == nil {
		return &Receipt{MessageID: key}, nil
	}
	t := Ticket{Scope: v.route, Key: key, Owner: newOwner(), Until: v.now().Add(v.lease)}
	ctx, span := spans.Start(ctx, "replay.claim")
	state, err := v.store.Claim(ctx, t, v.lease)
	endClaim(span, v.route, state, err)
	switch {
	case errors.Is(err, ErrStoreFull):
		return nil, &Error{Reason: ReasonFull, Cause: err, kind: ErrStoreUnavailable}
	case err != nil:
		// The claim may have run and its reply been lost: release it
		// (only this claim's owner can), so the sender's retry is not
		// taken for a message in flight.
		_ = v.store.Release(context.WithoutCancel(ctx), t)
		if v.failOpen {
			return &Receipt{StoreErr: err, MessageID: key}, nil
		}
		return nil, &Error{Reason: ReasonUnavailable, Cause: err, kind: ErrStoreUnavailable}
	case state == Taken:
		return nil, &Error{Reason: ReasonDuplicate, kind: ErrDuplicate}
	case state == InFlight:
		return nil, &Error{Reason: ReasonInFlight, kind: ErrInFlight}
	}
	return &Receipt{store: v.store, ticket: t, ttl: v.window(), MessageID: key}, nil
}

// window is how long a delivered message is remembered: as long as its
// timestamp stays acceptable (it may carry one up to a tolerance ahead of
// now).
func (v *Verifier) window() time.Duration { return 2 * v.tolerance }

// Scheme is the verifier's scheme name.
func (v *Verifier) Scheme() string { return v.scheme }

// Signed reports whether h carries the scheme's signature header at all
// (a route that takes a bearer token or a signature judges the credential
// presented).
func (v *Verifier) Signed(h http.Header) bool { return h.Get(signatureHeader(v.scheme)) != "" }

func signatureHeader(scheme string) string {
	switch scheme {
	case StandardWebhooks:
		return "Webhook-Signature"
	case GitHub:
		return "X-Hub-Signature-256"
	case Stripe:
		return "Stripe-Signature"
	case Shopify:
		return "X-Shopify-Hmac-Sha256"
	}
	return ""
}

// keyVersion starts every replay key: a change in how keys are derived
// changes it.
const keyVersion = "tokengate replay key v2"

// replayKey is the message's one replay key: the SHA-256 of the route, the
// scheme and the message's signed identity, each length-prefixed (so no
// two different tuples join to the same bytes), in unpadded base64url.
func (v *Verifier) replayKey(identity [][]byte) string {
	d := sha256.New()
	var n [8]byte
	put := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		d.Write(n[:])
		d.Write(b)
	}
	put([]byte(keyVersion))
	put([]byte(v.route))
	put([]byte(v.scheme))
	for _, b := range identity {
		put(b)
	}
	return base64.RawURLEncoding.EncodeToString(d.Sum(nil))
}

// endClaim records a replay-store claim's result on its span: claimed,
// duplicate, in_flight, full or unavailable. Never the replay key, the
// message id or the signature.
func endClaim(span trace.Span, route string, state State, err error) {
	if !span.IsRecording() {
		return
	}
	r := "claimed"
	switch {
	case errors.Is(err, ErrStoreFull):
		r = "full"
	case err != nil:
		r = "unavailable"
		span.SetStatus(codes.Error, r)
	case state == Taken:
		r = "duplicate"
	case state == InFlight:
		r = "in_flight"
	}
	span.SetAttributes(spans.Route.String(route), spans.Result.String(r))
	span.End()
}
