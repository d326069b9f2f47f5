package egress

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
)

// maxTokenRequestBody bounds the form body oauth2 builds; it only holds
// the grant, the scope, the credentials and the configured parameters.
const maxTokenRequestBody = 64 << 10

// shapeTransport turns the form-encoded token request golang.org/x/oauth2
// builds into the JSON or multipart body a vendor expects, so oauth2 still
// parses the answer (expires_in as a number or a string, RFC 6749 §5.2
// errors). Basic and form requests pass through untouched.
type shapeTransport struct {
	style AuthStyle
	next  http.RoundTripper
}

func (t shapeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.style != AuthJSON && t.style != AuthMultipart {
		return t.next.RoundTrip(req)
	}
	raw, err := io.ReadAll(io.LimitReader(req.Body, maxTokenRequestBody+1))
	req.Body.Close()
	if err != nil {
		return nil, err
	}
	if len(raw) > maxTokenRequestBody {
		return nil, fmt.Errorf("token request parameters exceed %d bytes", maxTokenRequestBody)
	}
	vals, err := url.ParseQuery(string(raw))
	if err != nil {
		return nil, err
	}
	body, ctype, err := reshape(t.style, vals)
	if err != nil {
		return nil, err
	}
	out := req.Clone(req.Context())
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	out.ContentLength = int64(len(body))
	out.Header.Set("Content-Type", ctype)
	return t.next.RoundTrip(out)
}

// reshape encodes the token request parameters as JSON (every value a
// string, as MyParcel.com documents) or as multipart/form-data fields,
// grant_type first.
func reshape(style AuthStyle, vals url.Values) ([]byte, string, error) {
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		switch {
		case a == b:
			return 0
		case a == "grant_type":
			return -1
		case b == "grant_type":
			return 1
		case a < b:
			return -1
		}
		return 1
	})
	if style == AuthJSON {
		m := make(map[string]string, len(vals))
		for _, k := range keys {
			m[k] = vals.Get(k)
		}
		b, err := json.Marshal(m)
		return b, "application/json", err
	}
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, k := range keys {
		if err := w.WriteField(k, vals.Get(k)); err != nil {
			return nil, "", err
		}
	}
	if err := w.Close(); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), w.FormDataContentType(), nil
}
