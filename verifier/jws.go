package verifier

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"unicode/utf8"
	"unsafe"

	jose "github.com/go-jose/go-jose/v4"
)

// compactJWS is a compact JWS (RFC 7515 §7.1) decoded once: the header
// fields used to choose and check keys, the payload, and the signature
// over the signing input exactly as sent.
type compactJWS struct {
	signingInput string // BASE64URL(header) "." BASE64URL(payload)
	alg          jose.SignatureAlgorithm
	kid, typ     string
	payload, sig []byte
}

var (
	errBadSignature = errors.New("signature does not verify")
	errCritical     = errors.New("unsupported critical header")
)

// strictB64 is the one spelling of base64url a JWS segment may have
// (RFC 7515 §2, RFC 4648 §3.5): no padding, the unused bits of the last
// character zero. Another spelling of the same bytes would be another token
// (another cache entry, another replay key) for one signature.
var strictB64 = base64.RawURLEncoding.Strict()

// errNonCanonical: a segment decodes, but is not spelled canonically.
var errNonCanonical = errors.New("segment is not canonical base64url")

// decodeSegment decodes a JWS segment that must be canonical base64url.
// The decoder skips CR and LF even in strict mode; a segment holding one
// decodes to fewer bytes than its length implies, and is refused.
func decodeSegment(s string) ([]byte, error) {
	b, err := strictB64.DecodeString(s)
	if err != nil {
		return nil, errNonCanonical
	}
	if len(b) != strictB64.DecodedLen(len(s)) {
		return nil, errNonCanonical
	}
	return b, nil
}

// looseDecode decodes base64 as leniently as any JOSE library might
// (padding, the standard alphabet, spare bits, line breaks). It only tells
// a JWS from an opaque token: a token whose first segment is a JSON object
// in any spelling is a JWS, refused if it is not canonical, and never
// handed to introspection as if it were opaque.
func looseDecode(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	s = strings.Map(func(r rune) rune {
		switch r {
		case '+':
			return '-'
		case '/':
			return '_'
		}
		return r
	}, s)
	return base64.RawURLEncoding.DecodeString(s)
}

// parseCompactJWS decodes token. errNotJWS means it is not shaped like a
// JWS at all (three parts, the first a JSON object in base64, however
// spelled); any other error is a JWS that is refused: a segment that is not
// canonical base64url, a header that is not UTF-8. The header is read with
// exact, duplicate-free names like the claims; "crit" (even empty) and
// "b64" are refused: tokengate implements no JWS extension.
func parseCompactJWS(token string) (*compactJWS, error) {
	head, rest, ok := strings.Cut(token, ".")
	if !ok {
		return nil, errNotJWS
	}
	body, sig, ok := strings.Cut(rest, ".")
	if !ok || strings.IndexByte(sig, '.') >= 0 {
		return nil, errNotJWS
	}
	hb, canonErr := decodeSegment(head)
	if canonErr != nil {
		var err error
		if hb, err = looseDecode(head); err != nil {
			return nil, errNotJWS
		}
	}
	j := &compactJWS{signingInput: token[:len(head)+1+len(body)]}
	err := j.readHeader(hb)
	switch {
	case errors.Is(err, errNotObject):
		return nil, errNotJWS
	case canonErr != nil:
		return nil, invalid(reasonAlg, fmt.Errorf("header: %w", canonErr))
	case !utf8.Valid(hb):
		return nil, invalid(reasonAlg, errors.New("header is not UTF-8"))
	case errors.Is(err, errCritical):
		return nil, invalid("unsupported critical header", nil)
	case err != nil:
		return nil, invalid(reasonAlg, err)
	case j.alg == "":
		return nil, invalid(reasonAlg, errors.New(`header has no "alg"`))
	}
	if j.payload, err = decodeSegment(body); err != nil {
		return nil, invalid(reasonAlg, fmt.Errorf("payload: %w", err))
	}
	if j.sig, err = decodeSegment(sig); err != nil {
		return nil, invalid(reasonAlg, fmt.Errorf("signature: %w", err))
	}
	return j, nil
}

// readHeader reads "alg", "kid" and "typ" from a decoded JWS header, each
// at most once and by its exact name; "crit" or "b64" is errCritical.
func (j *compactJWS) readHeader(hb []byte) error {
	var seen [3]bool
	return members(hb, func(name, raw []byte) error {
		var dst *string
		i := -1
		switch string(name) {
		case "alg":
			i = 0
		case "kid":
			i, dst = 1, &j.kid
		case "typ":
			i, dst = 2, &j.typ
		case "crit", "b64":
			return errCritical
		default:
			return nil
		}
		if seen[i] {
			return errors.New("header parameter given twice")
		}
		seen[i] = true
		if i == 0 {
			alg, err := claimString("alg", raw)
			j.alg = jose.SignatureAlgorithm(alg)
			return err
		}
		var err error
		*dst, err = claimString(string(name), raw)
		return err
	})
}

// verifySignature checks sig over input with key for alg (RFC 7518 §3):
// the key's type must fit the algorithm (an RSA key never verifies an ES
// token, an EC key only with its own curve), and ECDSA signatures are the
// fixed-size R||S of the curve.
func verifySignature(alg jose.SignatureAlgorithm, key any, input string, sig []byte) error {
	in := unsafe.Slice(unsafe.StringData(input), len(input)) // read only
	switch alg {
	case jose.EdDSA:
		k, ok := key.(ed25519.PublicKey)
		if !ok || !ed25519.Verify(k, in, sig) {
			return errBadSignature
		}
		return nil
	case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
		k, ok := key.(*rsa.PublicKey)
		if !ok {
			return errBadSignature
		}
		h, digest := hashOf(alg, in)
		var err error
		if alg == jose.PS256 || alg == jose.PS384 || alg == jose.PS512 {
			err = rsa.VerifyPSS(k, h, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
		} else {
			err = rsa.VerifyPKCS1v15(k, h, digest, sig)
		}
		if err != nil {
			return errBadSignature
		}
		return nil
	case jose.ES256, jose.ES384, jose.ES512:
		k, ok := key.(*ecdsa.PublicKey)
		want := elliptic.P256()
		switch alg {
		case jose.ES384:
			want = elliptic.P384()
		case jose.ES512:
			want = elliptic.P521()
		}
		if !ok || k.Curve != want {
			return errBadSignature
		}
		size := (want.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return errBadSignature
		}
		_, digest := hashOf(alg, in)
		r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		if !ecdsa.Verify(k, digest, r, s) {
			return errBadSignature
		}
		return nil
	}
	return errBadSignature
}

// hashOf is the algorithm's hash of in.
func hashOf(alg jose.SignatureAlgorithm, in []byte) (crypto.Hash, []byte) {
	switch alg {
	case jose.RS384, jose.PS384, jose.ES384:
		d := sha512.Sum384(in)
		return crypto.SHA384, d[:]
	case jose.RS512, jose.PS512, jose.ES512:
		d := sha512.Sum512(in)
		return crypto.SHA512, d[:]
	default:
		d := sha256.Sum256(in)
		return crypto.SHA256, d[:]
	}
}
