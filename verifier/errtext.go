package verifier

import (
	"fmt"
	"io"
	"net/http"
	"strings"
)

// MaxRemoteErrorText bounds the text of an error that carries what a
// remote server sent — an OIDC discovery error page (go-oidc quotes the
// whole body), a status line, a JWKS URL from a discovery document: such
// errors are logged, shown on the status page and put in 503s, and an
// 8 MB error page must not become an 8 MB log line.
const MaxRemoteErrorText = 1024

// MaxDiscoverySize bounds an OIDC discovery answer read (documents are a
// few KiB; go-oidc itself reads without a bound).
const MaxDiscoverySize = 1 << 20

// boundedError is an error whose text was cut at MaxRemoteErrorText bytes;
// errors.Is and errors.As still see the error it was cut from.
type boundedError struct {
	text string
	err  error
}

func (e *boundedError) Error() string { return e.text }
func (e *boundedError) Unwrap() error { return e.err }

// bound returns err, or err with its text cut at MaxRemoteErrorText bytes
// (on a rune boundary, control characters turned into spaces) when longer.
func bound(err error) error {
	if err == nil {
		return nil
	}
	s := err.Error()
	if len(s) <= MaxRemoteErrorText {
		return err
	}
	s = strings.ToValidUTF8(s[:MaxRemoteErrorText], "")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return &boundedError{text: s + fmt.Sprintf("… (%d bytes cut)", len(err.Error())-MaxRemoteErrorText), err: err}
}

// errTooLarge: a discovery answer longer than MaxDiscoverySize.
var errTooLarge = fmt.Errorf("the answer is larger than %d bytes", MaxDiscoverySize)

// capBodies returns a copy of c whose answers' bodies fail with
// errTooLarge past n bytes.
func capBodies(c *http.Client, n int64) *http.Client {
	cc := *c
	next := c.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	cc.Transport = cappedTransport{next: next, n: n}
	return &cc
}

type cappedTransport struct {
	next http.RoundTripper
	n    int64
}

func (t cappedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if err == nil {
		resp.Body = &cappedBody{ReadCloser: resp.Body, left: t.n + 1} // n bytes read whole; one more fails
	}
	return resp, err
}

type cappedBody struct {
	io.ReadCloser
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}
