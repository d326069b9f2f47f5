package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"

	"go.uber.org/zap"
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

// bodyBudget bounds the bytes of signed bodies held at once. A request
// is charged for the buffer it has grown to hold the bytes it has read
// (never from the Content-Length it announces), in steps of at most
// double what it holds, so a sender that announces a large body and sends
// little holds little.
type bodyBudget struct{ sem *semaphore.Weighted }

// firstChunk is the first reservation of a body being read.
const firstChunk = 4 << 10

// readSigned reads the whole body, up to limit, within the budget, and
// puts the same bytes back for forwarding. release must be called when the
// request is done.
func (h *Handler) readSigned(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, func(), error) {
	var reserved int64
	release := func() {
		if reserved > 0 {
			h.budget.sem.Release(reserved)
		}
	}
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
	src := http.MaxBytesReader(w, r.Body, limit)
	var buf []byte
	for {
		if len(buf) == cap(buf) {
			if int64(cap(buf)) >= want {
				// Full: the body must end here (EOF), or it is too long.
				var one [1]byte
				n, err := io.ReadFull(src, one[:])
				switch {
				case n > 0:
					return nil, release, errTooLarge
				case errors.Is(err, io.EOF):
					return keepBody(r, buf), release, nil
				}
				return nil, release, bodyError(err)
			}
			grown := min(max(2*int64(cap(buf)), firstChunk), want)
			if !h.budget.sem.TryAcquire(grown - int64(cap(buf))) {
				return nil, release, errBodyBudget
			}
			reserved += grown - int64(cap(buf))
			next := make([]byte, len(buf), grown)
			copy(next, buf)
			buf = next
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

// settle records what the receiver did with a verified message, as soon
// as its status is known (and again, to no effect, when the request
// ends): taken (2xx), a copy is answered as a duplicate; not taken (no
// answer, or not 2xx), it is released so the sender's retry is delivered.
func (h *Handler) settle(st *state) {
	if st.receipt == nil {
		return
	}
	delivered := st.upstreamStatus >= 200 && st.upstreamStatus < 300
	ctx, cancel := context.WithTimeout(context.Background(), h.storeTimeout)
	defer cancel()
	if err := st.receipt.Settle(ctx, delivered); err != nil {
		if delivered {
			h.log.Warn("replay store: could not record a delivered message; a copy may be forwarded again once its lease ends", zap.Error(err))
		} else {
			h.log.Warn("replay store: could not release an undelivered message; the sender's retry gets 409 until the release, retried in the background, lands or its lease ends", zap.Error(err))
		}
	}
}
