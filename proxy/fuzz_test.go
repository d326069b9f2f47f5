package proxy

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

// FuzzBearerToken: any Authorization header value either yields a token
// that is a well-formed RFC 6750 b64token, or one of the two refusals.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{
		"Bearer abc.def.ghi", "bearer x", "BEARER  y==", "Bearer\tz", "Bearer ", "Basic YTpi",
		"Bearer a b", "Bearerx", "Bearer t\xc3\xa9", "Bearer ...", "", "Bearer =abc", "Bearer abc=",
	} {
		f.Add(s, "")
	}
	f.Add("Bearer a", "Bearer b")
	f.Fuzz(func(t *testing.T, v1, v2 string) {
		h := http.Header{}
		h.Add("Authorization", v1)
		if v2 != "" {
			h.Add("Authorization", v2)
		}
		tok, err := bearerToken(h)
		switch {
		case err == nil:
			if v2 != "" {
				t.Fatalf("two headers accepted: %q %q", v1, v2)
			}
			if tok == "" || !isB64Token(tok) || strings.ContainsAny(tok, " \t\r\n") {
				t.Fatalf("bad token %q from %q", tok, v1)
			}
			if !strings.HasSuffix(v1, tok) || !strings.EqualFold(v1[:6], "bearer") {
				t.Fatalf("token %q is not the tail of a Bearer header %q", tok, v1)
			}
		case errors.Is(err, errNoCredentials), errors.Is(err, errMalformed):
		default:
			t.Fatalf("unexpected error %v", err)
		}
	})
}

// FuzzCleanPath: the forwarded path is always clean, absolute, and never
// climbs out with "..".
func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"/hooks/../admin", "//a//b", "/a/./b/", "", "a", "/..", "/hooks/x/../../..", "/a/b/."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		c := cleanPath(p)
		if !strings.HasPrefix(c, "/") || strings.Contains(c, "//") {
			t.Fatalf("cleanPath(%q) = %q", p, c)
		}
		for _, seg := range strings.Split(c, "/") {
			if seg == ".." || seg == "." {
				t.Fatalf("cleanPath(%q) = %q keeps %q", p, c, seg)
			}
		}
	})
}
