package egress

import (
	"encoding/base64"
	"encoding/hex"
	"net/url"
)

// tokenEncodings are the forms of tokens the client secret is hidden in
// too, besides the token as is: form- and path-encoded, as %q or JSON
// would escape it, in hex, and in base64 (standard and URL alphabets,
// padded and raw). A vendor that echoes a token it was sent (or issued),
// encoded, in an error shows nothing usable.
func tokenEncodings(ts ...string) []string {
	var out []string
	for _, t := range ts {
		if t == "" {
			continue
		}
		b := []byte(t)
		out = append(out, url.QueryEscape(t), url.PathEscape(t), hex.EncodeToString(b),
			base64.StdEncoding.EncodeToString(b), base64.URLEncoding.EncodeToString(b),
			base64.RawStdEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b))
		out = append(out, escapedForms(t)...)
	}
	return out
}

// withTokens adds tokens to hide, each as is and in its encodings
// (matched without regard to case, as every form is: upper-case hex
// too).
func (r redactor) withTokens(ts ...string) redactor {
	return r.with(append(append([]string(nil), ts...), tokenEncodings(ts...)...)...)
}
