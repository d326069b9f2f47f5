package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/signature"
)

// SignatureVerifier is what the handler needs from a route's signed-webhook
// check; *signature.Verifier implements it.
type SignatureVerifier interface {
	// Signed reports whether the request carries the scheme's signature
	// header (auth: any judges the credential presented).
	Signed(h http.Header) bool
	// CheckHeaders judges the headers alone (the signature parses for the
	// scheme, a signed timestamp is fresh), before any of the body is
	// read; the error is a *signature.Error.
	CheckHeaders(h http.Header) error
	// Verify checks the headers and the complete body; the error is a
	// *signature.Error.
	Verify(ctx context.Context, h http.Header, body []byte) (*signature.Receipt, error)
}

var _ SignatureVerifier = (*signature.Verifier)(nil)

// SignatureObserver, when the Observer also implements it, counts
// signature verdicts by route and result ("ok" or signature.Label).
type SignatureObserver interface {
	ObserveSignature(route, result string)
}

// firstChunk is the first reservation of a body being read, made once
// its first byte has arrived.
const firstChunk = 4 << 10

// readSigned reads the whole body, up to limit, within the budget, and
// puts the same bytes back for forwarding. Nothing is charged before a
// byte of the body has arrived: the buffer is grown (and charged to the
// budget and to the client's share) only when a byte that does not fit
// is in hand, to at most twice what it holds. release must be called when
// the request is done.
func (h *Handler) readSigned(w http.ResponseWriter, r *http.Request, st *state, limit int64) ([]byte, func(), error) {
	var reserved int64
	client := clientKey(st.client)
	release := func() { h.budget.release(client, reserved) }
	if r.ContentLength > limit {
		return nil, release, errTooLarge
	}
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return []byte{}, release, nil
	}
	if h.bodyRead > 0 {
		_ = http.NewResponseController(w).SetReadDeadline(h.now().Add(h.bodyRead))
	}
	want := limit // the largest buffer this body may need
	if r.ContentLength > 0 {
		want = r.ContentLength
	}
	share := h.budget.share(limit)
	src := http.MaxBytesReader(w, r.Body, limit)
	var buf []byte
	next := make([]byte, 1) // the byte that waits for room
	for {
		if len(buf) == cap(buf) {
			n, err := src.Read(next)
			switch {
			case n == 0 && err == nil:
				continue
			case n == 0 && errors.Is(err, io.EOF):
				return keepBody(r, buf), release, nil
			case n == 0:
				return nil, release, bodyError(err)
			case int64(len(buf)) >= want:
				return nil, release, errTooLarge
			}
			grown := min(max(2*int64(cap(buf)), firstChunk), want)
			if err := h.budget.reserve(client, grown-int64(cap(buf)), share); err != nil {
				return nil, release, err
			}
			reserved += grown - int64(cap(buf))
			b := make([]byte, len(buf), grown)
			copy(b, buf)
			buf = append(b, next[0])
			if errors.Is(err, io.EOF) {
				return keepBody(r, buf), release, nil
			}
			if err != nil {
				return nil, release, bodyError(err)
			}
			continue
		}
		n, err := src.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return keepBody(r, buf), release, nil
		}
		if err != nil {
			return nil, release, bodyError(err)
		}
	}
}

// keepBody puts a body read whole back on the request, for forwarding.
func keepBody(r *http.Request, body []byte) []byte {
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	return body
}

// bodyError names why reading a signed body failed.
func bodyError(err error) error {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return errTooLarge
	case isTimeout(err):
		return errBodyTimeout
	}
	return errClientGone
}

// checkSignature reads and verifies a signed request on rt; the receipt
// goes in st so that an undelivered message is forgotten afterwards.
func (h *Handler) checkSignature(w http.ResponseWriter, r *http.Request, st *state, rt *route) (func(), error) {
	if err := rt.sig.CheckHeaders(r.Header); err != nil {
		h.observeSignature(rt, err)
		return func() {}, err
	}
	body, release, err := h.readSigned(w, r, st, rt.sigMaxBody)
	if err != nil {
		return release, err
	}
	receipt, err := rt.sig.Verify(r.Context(), r.Header, body)
	h.observeSignature(rt, err)
	if err != nil {
		return release, err
	}
	if receipt.StoreErr != nil {
		h.log.Warn("replay store unavailable: a signed message was forwarded without a replay check (replay_fail_open)")
	}
	st.receipt, st.delivery.body = receipt, body
	return release, nil
}

func (h *Handler) observeSignature(rt *route, err error) {
	if so, ok := h.obs.(SignatureObserver); ok {
		result := "ok"
		if err != nil {
			result = signature.Label(err)
		}
		so.ObserveSignature(rt.name, result)
	}
}

// signedLimits are the handler's bounds for signed routes.
type signedLimits struct {
	budget *bodyBudget
	// storeTimeout bounds settling a message's claim.
	storeTimeout time.Duration
	// detachFor bounds the upstream request of a claimed message, which
	// does not end with its sender (dial and response timeouts).
	detachFor time.Duration
}

func newSignedLimits(cfg *config.Config) signedLimits {
	return signedLimits{
		budget:       newBodyBudget(int64(cfg.Signatures.BodyMemory)),
		storeTimeout: cfg.Signatures.StoreTimeout.D(),
		detachFor:    cfg.Upstream.DialTimeout.D() + cfg.Upstream.ResponseTimeout.D(),
	}
}

// delivery is what a request knows of a verified signed message.
type delivery struct {
	receipt *signature.Receipt // its claim, settled by the receiver's answer
	body    []byte             // the verified body (stored by a queued route)
	// sent is how far a claimed message's upstream request got (send…);
	// answered is set once the receiver's status is known, and onAnswer,
	// if set, is then called.
	sent     atomic.Int32
	answered atomic.Bool
	onAnswer func()
}

// How far the upstream request of a claimed message got.
const (
	sendNone   = iota // not connected to the receiver
	sendConn          // connected: the request may have been written whole
	sendWrote         // written whole: the receiver has the message
	sendFailed        // writing failed: the receiver has not the whole message
)

// detach lets the upstream request of a claimed message (not an upgrade)
// outlive its sender. Once the receiver may have the message, cancelling the request
// would only hide the receiver's answer, and the claim would be released
// for a copy the receiver then processes again: the request runs until
// the receiver answers, bounded by the dial and response timeouts; a
// sender that goes away after the answer cancels the copy of the
// response, as on any route. The trace records how far the request got (state.sent), for
// settle. stop ends the bounds.
func (h *Handler) detach(ctx context.Context, st *state) (context.Context, func()) {
	if !st.receipt.Claimed() || st.upgrade != "" {
		return ctx, func() {}
	}
	client := ctx
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	deadline := time.AfterFunc(max(h.detachFor, time.Second), cancel)
	stopClient := context.AfterFunc(client, func() {
		if st.answered.Load() {
			cancel()
		}
	})
	st.onAnswer = func() {
		deadline.Stop() // a long response is not cut
		if client.Err() != nil {
			st.err = errClientGone // logged as 499; the answer still settles the message
		}
	}
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { st.sent.CompareAndSwap(sendNone, sendConn) },
		WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err != nil {
				st.sent.Store(sendFailed)
			} else {
				st.sent.Store(sendWrote)
			}
		},
	})
	return ctx, func() { deadline.Stop(); stopClient(); cancel() }
}

// answered notes the receiver's status and settles the message.
func (h *Handler) answered(st *state) {
	st.delivery.answered.Store(true)
	if st.onAnswer != nil {
		st.onAnswer()
	}
	h.settle(st)
}

// settle records what the receiver did with a verified message, as soon
// as its status is known (and again, to no effect, when the request
// ends): taken (2xx), a copy is answered as a duplicate; not taken (not
// 2xx, or the receiver never got the whole message), it is released so
// the sender's retry is delivered. A message the receiver may have
// processed without its answer coming back (a response timeout, a
// connection lost after the request was written) is kept in flight until
// its lease ends: a copy meanwhile is 409, and after the lease the
// sender's retry is delivered again (at least once).
func (h *Handler) settle(st *state) {
	if !st.receipt.Claimed() {
		return
	}
	if s := st.sent.Load(); st.upstreamStatus == 0 && (s == sendConn || s == sendWrote) {
		if st.receipt.Keep() {
			h.log.Warn("the receiver may have a signed message whose answer was lost: it stays in flight (copies get 409) until its lease ends, then a retry is delivered again",
				zap.Time("lease_ends", st.receipt.LeaseEnds()))
		}
		return
	}
	delivered := st.upstreamStatus >= 200 && st.upstreamStatus < 300
	ctx, cancel := context.WithTimeout(context.Background(), h.storeTimeout)
	defer cancel()
	if err := st.receipt.Settle(ctx, delivered); err != nil {
		if delivered {
			h.log.Warn("replay store: could not record a delivered message; retried in the background, and copies get 409 until it lands", zap.Error(err))
		} else {
			h.log.Warn("replay store: could not release an undelivered message; the sender's retry gets 409 until the release, retried in the background, lands or its lease ends", zap.Error(err))
		}
	}
}
