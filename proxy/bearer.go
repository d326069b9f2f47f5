package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
)

// bearerToken extracts the token from the Authorization header only
// (RFC 6750 §2.1). It returns errNoCredentials when there is no bearer
// credential at all (including another scheme such as Basic, which per
// RFC 6750 §3.1 gets a challenge without an error code), and an error
// wrapping errMalformed when the header is present but not well formed.
func bearerToken(h http.Header) (string, error) {
	values := h.Values("Authorization")
	switch len(values) {
	case 0:
		return "", errNoCredentials
	case 1:
	default:
		return "", fmt.Errorf("%w: more than one Authorization header", errMalformed)
	}
	v := values[0]
	scheme, rest, _ := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		if len(scheme) >= 6 && strings.EqualFold(scheme[:6], "Bearer") {
			return "", fmt.Errorf("%w: Bearer must be followed by one or more spaces", errMalformed)
		}
		return "", errNoCredentials
	}
	token := strings.TrimLeft(rest, " ") // 1*SP
	if token == "" {
		return "", fmt.Errorf("%w: empty bearer token", errMalformed)
	}
	if !isB64Token(token) {
		return "", fmt.Errorf("%w: the bearer token has characters RFC 6750 does not allow", errMalformed)
	}
	return token, nil
}

// isB64Token reports whether s is an RFC 6750 b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	i := 0
	for i < len(s) && b64TokenChar[s[i]] {
		i++
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

// b64TokenChar marks the bytes of a b64token before its padding: every
// request's token is scanned, so one table look-up per byte.
var b64TokenChar = func() (t [256]bool) {
	for c := range 256 {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.ContainsRune("-._~+/", rune(c))
	}
	return t
}()

// TokenID is the short token fingerprint for logs: the first 8 hex
// characters of its SHA-256. The token itself is never logged.
func TokenID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:4])
}
