package egress

import (
	"bytes"
	"errors"
	"io"
	"net/http"
)

// appBody records why reading the app's body failed, so that a failed
// round trip is put down to the app (408, 413) when the fault is its.
type appBody struct {
	io.ReadCloser
	st *reqState
}

func (b *appBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.st.bodyErr.CompareAndSwap(nil, &err)
	}
	return n, err
}

// bodyError answers when the app's body could not be read.
func (h *Handler) bodyError(w http.ResponseWriter, err error) {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		h.writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", msgTooLarge, 0)
	case isTimeout(err):
		w.Header().Set("Connection", "close")
		h.writeError(w, http.StatusRequestTimeout, "request_timeout", "the request body was not received within body_read_timeout", 0)
	default:
		h.writeError(w, http.StatusBadRequest, "invalid_request", "the request body could not be read", 0)
	}
}

// keepBodyPrealloc bounds what a declared Content-Length makes keepBody
// allocate before any byte arrived: memory follows the bytes read.
const keepBodyPrealloc = 64 << 10

// keepBody reads up to limit bytes of the body. A body that fits is kept
// for a retry; a longer one is put back together to stream.
func keepBody(r *http.Request, st *reqState, limit int64) error {
	size := int64(bytes.MinRead)
	if n := r.ContentLength; n > 0 && n <= limit {
		size = min(n+1, keepBodyPrealloc) // +1: ReadFrom sees the EOF without growing
	}
	b := bytes.NewBuffer(make([]byte, 0, size))
	if _, err := b.ReadFrom(io.LimitReader(r.Body, limit+1)); err != nil {
		return err
	}
	buf := b.Bytes()
	if int64(len(buf)) <= limit {
		r.Body.Close()
		st.replay = buf
		r.Body = io.NopCloser(bytes.NewReader(buf))
		r.ContentLength = int64(len(buf))
		return nil
	}
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
	return nil
}
