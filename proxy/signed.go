package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"

	"go.uber.org/zap"

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
func (h *Handler) readSigned(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, func(), error) {
	var reserved int64
	client := clientKey(h.fwd.ClientIP(r))
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
	body, release, err := h.readSigned(w, r, rt.sigMaxBody)
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
	st.receipt = receipt
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
