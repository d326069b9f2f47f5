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
	"regexp"
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
	for _, t := range sent {
		forms = append(forms, tokenForms(t)...)
	}
	return redactor{}.with(forms...)
}

// tokenForms are a token as is, form-encoded and as %q or JSON would
// escape it.
func tokenForms(t string) []string {
	if t == "" {
		return nil
	}
	return append(append([]string{t, url.QueryEscape(t)}, escapedForms(t)...), tokenEncodings(t)...)
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

// text makes endpoint-supplied text safe to log and show: the values of
// token-bearing fields (scrubFieldText) and every form replaced by
// [redacted] first, then control characters turned into
// spaces, then cut at n bytes (cutting first could leave a part of a
// secret that no longer matches).
func (r redactor) text(s string, n int) string {
	return clean(r.hide(scrubFieldText(s)), n)
}

// hide replaces every form in s.
func (r redactor) hide(s string) string {
	for _, f := range r.forms {
		s = replaceFold(s, f)
	}
	return s
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
// secret from the redactor, with the values of token-bearing members
// replaced (scrubFields): a 5xx answer carrying an access_token shows
// that it did, never the token.
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
		v = scrubFields(v)
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

// Token-bearing fields: their values are never shown, whoever's they are
// (the endpoint may echo another client's token or a token it issued
// before). The strong names are unambiguous in any spelling; code and
// token are names of other things too ("error code: …") and are matched
// only as a JSON member or a form parameter.
var (
	strongFields = []string{"access_token", "refresh_token", "id_token", "client_secret", "client_assertion",
		"assertion", "code_verifier", "device_code", "subject_token", "actor_token", "issued_token", "password"}
	weakFields = []string{"code", "token"}
	// JSON member ("name": "value", escapes included), form parameter
	// (name=value) and, for strong names, "name: value" in prose.
	jsonField  = regexp.MustCompile(`(?i)("(?:` + strings.Join(append(slices.Clone(strongFields), weakFields...), "|") + `)"\s*:\s*)"(?:[^"\\]|\\.)*"`)
	formField  = regexp.MustCompile(`(?i)((?:^|[\s&?;,{(\[])(?:` + strings.Join(append(slices.Clone(strongFields), weakFields...), "|") + `)=)[^&\s"',;}\])]+`)
	proseField = regexp.MustCompile(`(?i)(\b(?:` + strings.Join(strongFields, "|") + `)['"]?\s*[:=]\s*['"]?)[^\s&"',;}\])\[]+`)
)

// scrubFieldText replaces the values of token-bearing fields in text.
func scrubFieldText(s string) string {
	s = jsonField.ReplaceAllString(s, `${1}"`+redacted+`"`)
	s = formField.ReplaceAllString(s, "${1}"+redacted)
	return proseField.ReplaceAllString(s, "${1}"+redacted)
}

// scrubFields replaces, in a decoded JSON value, the value of every
// member named as a token-bearing field (any case, at any depth); numbers
// and booleans are left (an error "code": 400 is no secret).
func scrubFields(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, m := range v {
			switch m.(type) {
			case json.Number, bool, nil:
			default:
				if tokenField(k) {
					v[k] = redacted
					continue
				}
			}
			v[k] = scrubFields(m)
		}
	case []any:
		for i, m := range v {
			v[i] = scrubFields(m)
		}
	}
	return v
}

// tokenField reports whether a member name is a token-bearing field's.
func tokenField(name string) bool {
	name = strings.ToLower(name)
	return slices.Contains(strongFields, name) || slices.Contains(weakFields, name)
}
