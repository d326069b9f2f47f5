package egress

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"mime"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Bounds of endpoint-supplied text in messages.
const (
	maxCodeLen    = 64
	maxScopeLen   = 1024
	maxMessageLen = 1024 // a whole TokenError description
	redacted      = "[redacted]"
)

// redactor hides from text a token endpoint sent back everything that must
// never be shown: the client secret in every form it was sent in (as is,
// form-encoded, inside the Basic credentials), in its hex and base64
// forms and as %q or JSON would escape it, matched without regard to case
// (so its upper-case form too); the refresh token sent; and the tokens the
// answer carried. Every text built from a token endpoint's answer — any
// field, and the body itself — passes through one redactor (text), and
// every TokenError leaving the package through it once more (seal), so a
// field added later cannot carry the secret out either.
type redactor struct{ forms []string }

// redactor makes the redactor of o's token requests; sent are other
// secrets the request carried or the grant held (the refresh token sent,
// the one before it), hidden with their encodings too (withTokens).
func (o TokenOptions) redactor(sent ...string) redactor {
	var forms []string
	if s := o.ClientSecret; s != "" {
		id, qs := url.QueryEscape(o.ClientID), url.QueryEscape(s)
		b64 := base64.StdEncoding.EncodeToString
		forms = append(forms, s, qs, url.PathEscape(s),
			b64([]byte(o.ClientID+":"+s)), b64([]byte(id+":"+qs)),
			hex.EncodeToString([]byte(s)), b64([]byte(s)), base64.URLEncoding.EncodeToString([]byte(s)),
			base64.RawStdEncoding.EncodeToString([]byte(s)), base64.RawURLEncoding.EncodeToString([]byte(s)))
		forms = append(forms, escapedForms(s)...)
	}
	return redactor{}.with(forms...).withTokens(sent...)
}

// escapedForms are s as it appears inside a %q or a JSON string.
func escapedForms(s string) []string {
	q := strconv.Quote(s)
	out := []string{q[1 : len(q)-1]}
	for _, html := range []bool{true, false} {
		var b bytes.Buffer
		e := json.NewEncoder(&b)
		e.SetEscapeHTML(html)
		if e.Encode(s) == nil {
			j := strings.TrimSpace(b.String())
			out = append(out, j[1:len(j)-1])
		}
	}
	return out
}

// with adds more strings to hide (empty ones are ignored); the longest
// are replaced first, so a form inside another cannot leave a part of it.
func (r redactor) with(more ...string) redactor {
	forms := slices.Clone(r.forms)
	for _, f := range more {
		if f != "" && !slices.Contains(forms, f) {
			forms = append(forms, f)
		}
	}
	slices.SortStableFunc(forms, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	return redactor{forms: forms}
}

// text makes endpoint-supplied text safe to log and show: every form
// replaced by [redacted] first, then control characters turned into
// spaces, then cut at n bytes (cutting first could leave a part of a
// secret that no longer matches).
func (r redactor) text(s string, n int) string {
	for _, f := range r.forms {
		s = replaceFold(s, f)
	}
	return clean(s, n)
}

// replaceFold replaces every occurrence of f in s, ignoring ASCII case
// when f is ASCII (exactly otherwise).
func replaceFold(s, f string) string {
	if !isASCII(f) {
		return strings.ReplaceAll(s, f, redacted)
	}
	lower, lf := asciiLower(s), asciiLower(f)
	if !strings.Contains(lower, lf) {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(lower, lf)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		b.WriteString(redacted)
		s, lower = s[i+len(f):], lower[i+len(f):]
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// asciiLower lower-cases ASCII letters only, byte by byte, so offsets
// stay those of s (even where s is not valid UTF-8).
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}

// seal passes a failed token request's error through r before it leaves
// the package: a TokenError's code and description are what the app's
// 503, /readyz, the logs and `tokengate check` show.
func (r redactor) seal(err error) error {
	var te *TokenError
	if errors.As(err, &te) {
		te.Code = r.text(te.Code, maxCodeLen)
		te.Description = r.text(te.Description, maxMessageLen)
	}
	return err
}

// excerpt is the start of an answer body for an error message, when it is
// JSON or plain text (an HTML error page is left out). JSON is decoded
// and encoded again, so that an escape such as \u0026 cannot disguise a
// secret from the redactor.
func excerpt(body []byte, contentType string) string {
	mt, _, _ := mime.ParseMediaType(contentType)
	switch {
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		d := json.NewDecoder(bytes.NewReader(body))
		d.UseNumber()
		var v any
		if d.Decode(&v) != nil {
			return ""
		}
		var b bytes.Buffer
		e := json.NewEncoder(&b)
		e.SetEscapeHTML(false)
		if e.Encode(v) != nil {
			return ""
		}
		return strings.TrimSpace(b.String())
	case mt == "text/plain":
		return strings.TrimSpace(string(body))
	}
	return ""
}
