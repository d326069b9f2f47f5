package diagnose

// Reading check --webhook's REQUEST_FILE: one raw HTTP/1.1 request as a
// sender's delivery log or a capture shows it (request line, headers, a
// blank line, the body), with CRLF or bare LF line endings.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxCapture bounds the request file read (a signed body is at most a
// route's max_body_size, far less).
const maxCapture = 64 << 20

// capture is one request read from a file.
type capture struct {
	method, target, host string
	header               http.Header
	body                 []byte
	// lines is how many lines the request line and headers took, and
	// lineEnd the line endings seen there: "CRLF", "bare LF" or both.
	lines   int
	lineEnd string
	// date is the Date header, zero without one.
	date time.Time
	// notes say what reading the file found worth knowing: how the body
	// was delimited, bytes past Content-Length, a cut capture.
	notes []string
}

// readCapture reads the whole request file, bounded.
func readCapture(r io.Reader) ([]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(r, maxCapture+1))
	if err != nil {
		return nil, fmt.Errorf("reading the request: %w", err)
	}
	if len(raw) > maxCapture {
		return nil, fmt.Errorf("%w: the request file is larger than %d MiB", ErrUsage, maxCapture>>20)
	}
	return raw, nil
}

// parseCapture reads raw as an HTTP/1.1 request: the request line and
// headers through net/http's own parser (line endings made CRLF), the
// body as the bytes after the first blank line, delimited by
// Content-Length when there is one (chunked bodies decoded).
func parseCapture(raw []byte) (*capture, error) {
	raw = bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf")) // a BOM from an editor
	c := &capture{}
	var head []string
	crlf, lf := 0, 0
	rest := raw
	ended := false
	for len(rest) > 0 {
		line, after, found := bytes.Cut(rest, []byte("\n"))
		if found && bytes.HasSuffix(line, []byte("\r")) {
			crlf++
			line = line[:len(line)-1]
		} else if found {
			lf++
		}
		rest = after
		if len(line) == 0 {
			if len(head) == 0 {
				continue // blank lines before the request line are ignored (RFC 9112 §2.2)
			}
			ended = true
			break
		}
		head = append(head, string(line))
	}
	if len(head) == 0 {
		return nil, fmt.Errorf("%w: the request file is empty", ErrUsage)
	}
	c.lines = len(head)
	switch {
	case lf == 0:
		c.lineEnd = "CRLF"
	case crlf == 0:
		c.lineEnd = "bare LF"
	default:
		c.lineEnd = fmt.Sprintf("mixed: %d CRLF and %d bare LF", crlf, lf)
	}
	if !ended {
		c.notes = append(c.notes, "no blank line after the headers: the request has no body")
	}
	head[0] = asHTTP11(head[0], c)
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(strings.Join(head, "\r\n") + "\r\n\r\n")))
	if err != nil {
		return nil, fmt.Errorf("%w: the request file is not an HTTP/1.1 request (request line, headers, a blank line, the body): %v", ErrUsage, err)
	}
	c.method, c.target, c.host = req.Method, req.URL.RequestURI(), req.Host
	c.header = req.Header
	if d, err := http.ParseTime(req.Header.Get("Date")); err == nil {
		c.date = d
	}
	c.body = c.delimit(req, rest)
	c.header.Del("Content-Length")
	c.header.Del("Transfer-Encoding")
	return c, nil
}

// asHTTP11 reads a request line of HTTP/2 or HTTP/3 (a proxy's or a
// browser's log) as HTTP/1.1: the same method, target, headers and body.
func asHTTP11(line string, c *capture) string {
	i := strings.LastIndexByte(line, ' ')
	if i < 0 {
		return line
	}
	switch proto := line[i+1:]; proto {
	case "HTTP/2", "HTTP/2.0", "HTTP/3", "HTTP/3.0":
		c.notes = append(c.notes, fmt.Sprintf("the request line says %s: read as HTTP/1.1 (the same headers and body)", proto))
		return line[:i] + " HTTP/1.1"
	}
	return line
}

// delimit takes the body from the bytes after the blank line:
// chunked-decoded when the headers say so and the bytes are chunked,
// else as many as Content-Length says (saying what is past it or
// missing), else all of them.
func (c *capture) delimit(req *http.Request, rest []byte) []byte {
	if slices.Contains(req.TransferEncoding, "chunked") {
		b, err := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(rest)))
		if err == nil {
			c.notes = append(c.notes, fmt.Sprintf("Transfer-Encoding: chunked: decoded, %d bytes", len(b)))
			return b
		}
		c.notes = append(c.notes, fmt.Sprintf("Transfer-Encoding: chunked, but the body is not in chunks (a log shows it decoded): read as it is, %d bytes", len(rest)))
		return rest
	}
	cl := req.Header.Get("Content-Length")
	if cl == "" {
		c.notes = append(c.notes, fmt.Sprintf("no Content-Length: the body is everything after the blank line, %d bytes", len(rest)))
		return rest
	}
	n, err := strconv.Atoi(cl)
	switch {
	case err != nil || n < 0:
		c.notes = append(c.notes, fmt.Sprintf("Content-Length %q is not a length: the body is everything after the blank line, %d bytes", cl, len(rest)))
		return rest
	case n == len(rest):
		c.notes = append(c.notes, fmt.Sprintf("Content-Length %d, as in the file", n))
		return rest
	case n < len(rest):
		c.notes = append(c.notes, fmt.Sprintf("Content-Length %d: the %d bytes after them in the file (%s) are not part of the request (an editor adds a trailing newline)", n, len(rest)-n, visible(clipBytes(rest[n:], 16))))
		return rest[:n]
	}
	c.notes = append(c.notes, fmt.Sprintf("the file holds only %d of the Content-Length %d bytes: the capture is cut; the bytes there are checked", len(rest), n))
	return rest
}

// clipBytes is at most n bytes of b.
func clipBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
