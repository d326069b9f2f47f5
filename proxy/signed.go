package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"

	"golang.org/x/sync/semaphore"

	"github.com/tokengate/tokengate/signature"
)

// SignatureVerifier is what the handler needs from a route's signed-webhook
// check; *signature.Verifier implements it.
type SignatureVerifier interface {
	// Signed reports whether the request carries the scheme's signature
	// header (auth: any judges the credential presented).
	Signed(h http.Header) bool
	// Verify checks the headers and the complete body; the error is a
	// *signature.Error.
	Verify(ctx context.Context, h http.Header, body []byte) (*signature.Receipt, error)
}

// SignatureObserver, when the Observer also implements it, counts
// signature verdicts by route and result ("ok" or signature.Label).
type SignatureObserver interface {
	ObserveSignature(route, result string)
}

// errBodyBudget: the signed bodies held at once reached
// signatures.body_memory.
var errBodyBudget = errors.New("too many signed bodies in flight")

// bodyBudget bounds the bytes of signed bodies held at once: each request
// reserves its Content-Length, or its route's limit when the length is
// unknown, before reading.
type bodyBudget struct{ sem *semaphore.Weighted }

// readSigned reads the whole body, up to limit, within the budget, and
// puts the same bytes back for forwarding. release must be called when the
// request is done.
func (h *Handler) readSigned(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, func(), error) {
	none := func() {}
	if r.ContentLength > limit {
		return nil, none, errTooLarge
	}
	n := limit
	if r.ContentLength >= 0 {
		n = r.ContentLength
	}
	if !h.budget.sem.TryAcquire(n) {
		return nil, none, errBodyBudget
	}
	release := func() { h.budget.sem.Release(n) }
	if r.Body == nil || r.Body == http.NoBody || n == 0 {
		return []byte{}, release, nil
	}
	if h.bodyRead > 0 {
		_ = http.NewResponseController(w).SetReadDeadline(h.now().Add(h.bodyRead))
	}
	buf := bytes.NewBuffer(make([]byte, 0, min(n, 64<<10)))
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			err = errTooLarge
		case isTimeout(err):
			err = errBodyTimeout
		default:
			err = errClientGone
		}
		return nil, release, err
	}
	body := buf.Bytes()
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	return body, release, nil
}

// checkSignature reads and verifies a signed request on rt; the receipt
// goes in st so that an undelivered message is forgotten afterwards.
func (h *Handler) checkSignature(w http.ResponseWriter, r *http.Request, st *state, rt *route) (func(), error) {
	body, release, err := h.readSigned(w, r, rt.sigMaxBody)
	if err != nil {
		return release, err
	}
	receipt, err := rt.sig.Verify(r.Context(), r.Header, body)
	if so, ok := h.obs.(SignatureObserver); ok {
		result := "ok"
		if err != nil {
			result = signature.Label(err)
		}
		so.ObserveSignature(rt.name, result)
	}
	if err != nil {
		return release, err
	}
	if receipt.StoreErr != nil {
		h.log.Warn("replay store unavailable: a signed message was forwarded without a replay check (replay_fail_open)")
	}
	st.receipt = receipt
	return release, nil
}

// settle forgets a verified message the receiver did not take (no answer,
// or not 2xx), so the sender's retry is not refused as a replay.
func (h *Handler) settle(st *state) {
	if st.receipt == nil || (st.upstreamStatus >= 200 && st.upstreamStatus < 300) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.storeTimeout)
	defer cancel()
	if err := st.receipt.Forget(ctx); err != nil {
		h.log.Warn("replay store: could not release an undelivered message; the sender's retry may be refused as a replay until the window ends")
	}
}
