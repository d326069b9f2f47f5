package issuer

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// DefaultTimeout bounds reading a token request's body, and writing any
// answer, when Options leave BodyReadTimeout or WriteTimeout zero.
const DefaultTimeout = 10 * time.Second

// DefaultMaxHashWait bounds a login's wait for a bcrypt slot.
const DefaultMaxHashWait = 5 * time.Second

// startBody bounds the request body's arrival: a sender that trickles its
// body, or never sends it, is cut off at the deadline (408). Deadlines are
// the connection's wall clock, never Options.Now. The server lifts the
// read deadline itself once the body is read to its end (which drain
// makes sure of), so checking the secret may outlast it.
// A writer that cannot take a deadline (a wrapper without Unwrap) is an
// error: the token endpoint then refuses to read bodies at all.
func (s *Server) startBody(w http.ResponseWriter) error {
	return http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.o.BodyReadTimeout))
}

// dropBody gives up on a body that will not be read (a refusal answered
// before it, or a broken one): the connection closes after the answer
// instead of the server draining the rest at the sender's pace.
func dropBody(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength == 0 {
		return
	}
	if r.ProtoMajor == 1 {
		w.Header().Set("Connection", "close")
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Unix(1, 0))
}

// startWrite bounds writing the answer: a client that never reads cannot
// hold the connection.
func (s *Server) startWrite(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.o.WriteTimeout))
}

// drain reads what is left of a parsed body (a multipart epilogue, say),
// still under the read deadline and the size limit.
func drain(body io.Reader) error {
	if _, err := io.Copy(io.Discard, body); err != nil {
		return bodyError(err)
	}
	return nil
}

// bodyError maps a failed body read to its RFC 6749 answer.
func bodyError(err error) error {
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &mbe):
		return &oauthError{status: http.StatusRequestEntityTooLarge, code: "invalid_request", desc: "request body too large"}
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return &oauthError{status: http.StatusRequestTimeout, code: "invalid_request", desc: "the request body was not received in time"}
	}
	return badRequest("unreadable request body")
}
