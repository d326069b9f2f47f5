package proxy

import (
	"net/http"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/http/httpguts"
)

// checkPath refuses paths that some receiver stack would read differently
// from the cleaned path tokengate matches: decoded slashes or backslashes,
// NUL, and path parameters. Tomcat and Spring treat "..;" as ".." and drop
// ";jsessionid=…", so "/hooks/a/..;/admin" would reach /admin there.
// r.URL.Path is already percent-decoded: "%3b" is caught as ";".
func checkPath(u *url.URL) error {
	if strings.ContainsAny(u.Path, "\\\x00") || containsFold(u.RawPath, "%2f") || containsFold(u.RawPath, "%5c") {
		return errEncodedSlash
	}
	if strings.IndexByte(u.Path, ';') >= 0 || strings.IndexByte(u.Opaque, ';') >= 0 {
		return errPathParameter
	}
	return nil
}

// tokenInQuery reports whether any query parameter names access_token as
// a lenient framework would read it: percent-decoded, in any case
// (Unicode case folding, and ß as "ss": foldQueryName), spaces and control
// bytes around it trimmed (PHP drops leading spaces: "?+access_token=")
// and anything from a NUL on ignored (a C string), and then either as PHP
// reads brackets and separators (phpName) or as Express's qs and Rack read
// them (bracketName).
func tokenInQuery(rawQuery string) bool {
	const want = "access_token"
	for rawQuery != "" {
		var kv string
		// Rails and older stacks also split on ";" (the forwarded query
		// drops such pairs, but the check does not rely on it).
		if i := strings.IndexAny(rawQuery, "&;"); i >= 0 {
			kv, rawQuery = rawQuery[:i], rawQuery[i+1:]
		} else {
			kv, rawQuery = rawQuery, ""
		}
		key, _, _ := strings.Cut(kv, "=")
		if len(key) < len("access") {
			continue
		}
		key = lenientUnescape(key)
		if i := strings.IndexByte(key, 0); i >= 0 {
			key = key[:i]
		}
		key = strings.TrimFunc(key, func(r rune) bool { return r <= ' ' || r == 0x7f })
		php := phpName(key)
		if foldQueryName(php) == want {
			return true
		}
		if b := bracketName(key); b != php && foldQueryName(b) == want {
			return true
		}
	}
	return false
}

// lenientUnescape percent-decodes s as lenient parsers do (Express's qs):
// "+" as a space, each valid %XX as its byte, and an invalid escape
// ("%", "%zz") kept as it is.
func lenientUnescape(s string) string {
	if k, err := url.QueryUnescape(s); err == nil {
		return k
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b.WriteByte(' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// phpName is a parameter name as PHP reads it: anything from a "[" that a
// "]" follows on ignored ("access_token[]", "access_token[0]"), and ".",
// "-", " " or a lone "[" standing for "_" (foldQueryName maps those).
func phpName(key string) string {
	if i := strings.IndexByte(key, '['); i > 0 && strings.IndexByte(key[i:], ']') > 0 {
		return key[:i]
	}
	return key
}

// bracketName is a parameter name as Express's qs and Rack read it:
// leading brackets dropped ("[access_token]", "[]access_token"), then
// only the first segment, up to the next bracket ("access_token]",
// "[access_token][0]").
func bracketName(key string) string {
	key = strings.TrimLeft(key, "[]")
	if i := strings.IndexAny(key, "[]"); i >= 0 {
		key = key[:i]
	}
	return key
}

// foldQueryName is how a receiver may read a query parameter's name,
// folded to ASCII lower case: PHP's separators ('.', '-', ' ', '[') read
// as '_'; any letter whose Unicode case folding (strings.EqualFold, Go's
// ToLower, Java's equalsIgnoreCase) holds an ASCII letter reads as it
// (KELVIN SIGN as 'k', LONG S as 's'); and ß and ẞ read as "ss", as
// JavaScript's toUpperCase and Python's upper and casefold read them.
func foldQueryName(key string) string {
	var b strings.Builder
	b.Grow(len(key))
	for _, r := range key {
		switch r {
		case '.', '-', ' ', '[':
			r = '_'
		case 'ß', 'ẞ':
			b.WriteString("ss")
			continue
		}
		if r >= utf8.RuneSelf {
			for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
				if f < utf8.RuneSelf {
					r = f
					break
				}
			}
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// upgradeOf returns the protocol a request asks to switch to ("" for
// none). An HTTP2-Settings header alone also counts: it only serves h2c.
func upgradeOf(h http.Header) string {
	if v := h.Get("Upgrade"); v != "" {
		return v
	}
	if _, ok := h["Http2-Settings"]; ok {
		return "h2c"
	}
	if httpguts.HeaderValuesContainsToken(h["Connection"], "upgrade") {
		return "unknown"
	}
	return ""
}

// allowUpgrade permits a WebSocket upgrade on a route that opted in, and
// nothing else: an h2c upgrade would turn the connection into a tunnel
// whose later requests tokengate never sees.
func (r *route) allowUpgrade(proto string) error {
	if proto == "" {
		return nil
	}
	if r.websocket && strings.EqualFold(proto, "websocket") {
		return nil
	}
	return errUpgrade
}

func containsFold(s, sub string) bool {
	if s == "" {
		return false
	}
	return strings.Contains(strings.ToLower(s), sub)
}
