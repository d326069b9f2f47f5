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
)

// DefaultTolerance is how far a signed timestamp may be from now, and how
// long a message id is remembered against replays.
const DefaultTolerance = 5 * time.Minute

// Store remembers message ids for replay protection. It must be safe for
// concurrent use and shared by every replica that serves one receiver.
type Store interface {
	// Claim records keys for ttl unless one of them is already recorded;
	// false means the message was seen (and nothing new stays recorded).
	Claim(ctx context.Context, keys []string, ttl time.Duration) (bool, error)
	// Forget removes keys: the message was not delivered, and the sender's
	// retry must not be taken for a replay.
	Forget(ctx context.Context, keys []string) error
}

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
	// Tolerance bounds |now - signed timestamp| and is the replay window;
	// default DefaultTolerance.
	Tolerance time.Duration
	// Store, when set, refuses a message id seen within the window.
	Store Store
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
	store     Store
	failOpen  bool
	now       func() time.Time
	verify    func(keys, http.Header, []byte) (checked, error)
}

// New decodes the secrets and returns a Verifier.
func New(o Options) (*Verifier, error) {
	v := &Verifier{scheme: o.Scheme, route: o.Route, tolerance: o.Tolerance, store: o.Store, failOpen: o.FailOpen, now: o.Now}
	switch o.Scheme {
	case StandardWebhooks:
		v.verify = verifyStandard
	case GitHub:
		v.verify = verifyGitHub
	case Stripe:
		v.verify = verifyStripe
	case Shopify:
		v.verify = verifyShopify
	default:
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
	if v.now == nil {
		v.now = time.Now
	}
	return v, nil
}

// Receipt is a verified message. Release it with Forget when it was not
// delivered, so that the sender's retry is accepted.
type Receipt struct {
	store Store
	keys  []string
	// StoreErr is set when the store failed and the route fails open: the
	// message was not checked for replays.
	StoreErr error
}

// Forget removes the message's ids from the replay store.
func (r *Receipt) Forget(ctx context.Context) error {
	if r == nil || r.store == nil || len(r.keys) == 0 || r.StoreErr != nil {
		return nil
	}
	return r.store.Forget(ctx, r.keys)
}

// Verify checks the signature of a request's headers and complete body,
// then the timestamp, then (with a Store) that the message is new. The
// error is an *Error matching ErrRefused, ErrReplayed or
// ErrStoreUnavailable.
func (v *Verifier) Verify(ctx context.Context, h http.Header, body []byte) (*Receipt, error) {
	c, err := v.verify(v.keys, h, body)
	if err != nil {
		return nil, err
	}
	if !c.timestamp.IsZero() {
		if d := v.now().Sub(c.timestamp); d > v.tolerance || d < -v.tolerance {
			return nil, refused(ReasonTimestamp)
		}
	}
	if v.store == nil {
		return &Receipt{}, nil
	}
	keys := []string{v.replayKey(c.identity)}
	// A message is remembered for as long as its timestamp stays
	// acceptable: it may carry one up to a tolerance ahead of now.
	ttl := 2 * v.tolerance
	fresh, err := v.store.Claim(ctx, keys, ttl)
	switch {
	case err != nil && v.failOpen:
		return &Receipt{StoreErr: err}, nil
	case err != nil:
		return nil, &Error{Reason: ReasonUnavailable, Cause: err, kind: ErrStoreUnavailable}
	case !fresh:
		return nil, &Error{Reason: ReasonReplayed, kind: ErrReplayed}
	}
	return &Receipt{store: v.store, keys: keys}, nil
}

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
