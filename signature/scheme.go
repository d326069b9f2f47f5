package signature

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Scheme names, as configured.
const (
	StandardWebhooks = "standard-webhooks"
	GitHub           = "github"
	Stripe           = "stripe"
	Shopify          = "shopify"
)

// Schemes lists every supported scheme.
var Schemes = []string{StandardWebhooks, GitHub, Stripe, Shopify}

// maxSignatures bounds the signatures looked at in one header (rotation
// sends two or three): more cost CPU for nothing.
const maxSignatures = 8

// keys are one route's secrets, decoded for its scheme.
type keys struct {
	hmac [][]byte
	ed   []ed25519.PublicKey
}

// decodeSecrets turns configured secrets into keys. Standard Webhooks
// secrets are base64, with or without "whsec_" (as its reference libraries
// accept them); "whpk_" marks an Ed25519 public key for "v1a". The other
// schemes use the secret's bytes as they are (Stripe's "whsec_…" included:
// Stripe keys its HMAC with the whole string).
func decodeSecrets(scheme string, secrets []string) (keys, error) {
	var k keys
	for i, s := range secrets {
		if s == "" {
			return k, fmt.Errorf("secret %d is empty", i)
		}
		if scheme != StandardWebhooks {
			k.hmac = append(k.hmac, []byte(s))
			continue
		}
		if pk, ok := strings.CutPrefix(s, "whpk_"); ok {
			b, err := base64.StdEncoding.DecodeString(pk)
			if err != nil || len(b) != ed25519.PublicKeySize {
				return k, fmt.Errorf("secret %d: whpk_ must be followed by the base64 of a 32-byte Ed25519 public key", i)
			}
			k.ed = append(k.ed, ed25519.PublicKey(b))
			continue
		}
		b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
		if err != nil || len(b) == 0 {
			return k, fmt.Errorf("secret %d: a Standard Webhooks secret is whsec_ followed by base64 (or whpk_ and an Ed25519 public key)", i)
		}
		k.hmac = append(k.hmac, b)
	}
	return k, nil
}

// offered is what a request's headers say, read before its body: the
// signatures offered (decoded, each of its scheme's length) and, where the
// scheme signs them, the message id and timestamp as sent (they are part
// of the signed content). Headers that cannot yield one usable signature
// are refused before any byte of the body is read.
type offered struct {
	id, ts string
	at     time.Time // zero when the scheme signs no timestamp
	macs   [][]byte  // HMAC-SHA256 signatures
	eds    [][]byte  // Ed25519 signatures (Standard Webhooks "v1a")
}

// A scheme reads a request's signature headers (parse) and checks a body
// against them (verify), returning the signed values that identify the
// message against replays: never a spelling the sender chose (no
// signature text, no unsigned header).
type scheme struct {
	parse  func(http.Header) (offered, error)
	verify func(keys, offered, []byte) ([][]byte, bool)
	// headers are those parse reads: each must come once (read).
	headers []string
	// aliases are other names receivers read for headers (alias → the
	// header parse reads): sent beside it, each must hold its value.
	aliases map[string]string
}

var schemes = map[string]scheme{
	// Svix's libraries read svix-id, svix-timestamp and svix-signature
	// before the webhook-* headers (Svix sends its branded names unless
	// white-labelled).
	StandardWebhooks: {parseStandard, verifyStandard, []string{"Webhook-Id", "Webhook-Timestamp", "Webhook-Signature"},
		map[string]string{"Svix-Id": "Webhook-Id", "Svix-Timestamp": "Webhook-Timestamp", "Svix-Signature": "Webhook-Signature"}},
	GitHub:  {parseGitHub, verifyBody, []string{"X-Hub-Signature-256"}, nil},
	Stripe:  {parseStripe, verifyStripe, []string{"Stripe-Signature"}, nil},
	Shopify: {parseShopify, verifyBody, []string{"X-Shopify-Hmac-Sha256"}, nil},
}

// read parses the scheme's headers, refusing a request that sends one of
// them more than once: parse reads the first, and a second one, never
// verified, would be stored and forwarded beside it (an outside attack).
// An underscore spelling ("Webhook_id", "X_Hub_Signature_256") counts as
// the header sent again: CGI-style receivers (HTTP_WEBHOOK_ID) read both
// spellings as one, joined or one over the other. An alias (Svix's
// svix-id beside webhook-id) sent beside its header must hold the same
// value: a receiver whose library reads the alias first would otherwise
// read a value nothing verified.
func (s scheme) read(h http.Header) (offered, error) {
	for _, name := range s.headers {
		if len(h[name]) > 1 {
			return offered{}, refused(ReasonMalformed)
		}
	}
	for alias, name := range s.aliases {
		if v, ok := h[alias]; ok && (len(v) > 1 || len(h[name]) == 1 && v[0] != h[name][0]) {
			return offered{}, refused(ReasonMalformed)
		}
	}
	for k := range h {
		if strings.IndexByte(k, '_') < 0 {
			continue
		}
		n := http.CanonicalHeaderKey(strings.ReplaceAll(k, "_", "-"))
		if _, alias := s.aliases[n]; alias || slices.Contains(s.headers, n) {
			return offered{}, refused(ReasonMalformed)
		}
	}
	return s.parse(h)
}

// parseStandard reads Standard Webhooks: webhook-id, webhook-timestamp,
// and webhook-signature, a space-separated list of "v1,<base64
// HMAC-SHA256>" and "v1a,<base64 Ed25519>" (other entries are ignored, as
// the specification asks).
func parseStandard(h http.Header) (offered, error) {
	id, ts, sigs := h.Get("Webhook-Id"), h.Get("Webhook-Timestamp"), h.Get("Webhook-Signature")
	if id == "" || ts == "" || sigs == "" {
		return offered{}, refused(ReasonMissing)
	}
	t, err := unixSeconds(ts)
	if err != nil {
		return offered{}, refused(ReasonMalformed)
	}
	o := offered{id: id, ts: ts, at: t}
	n := 0
	for entry := range strings.FieldsSeq(sigs) {
		if n++; n > maxSignatures {
			break
		}
		version, enc, ok := strings.Cut(entry, ",")
		if !ok || (version != "v1" && version != "v1a") {
			continue
		}
		sig, err := base64.StdEncoding.Strict().DecodeString(enc)
		switch {
		case err != nil:
		case version == "v1" && len(sig) == sha256.Size:
			o.macs = append(o.macs, sig)
		case version == "v1a" && len(sig) == ed25519.SignatureSize:
			o.eds = append(o.eds, sig)
		}
	}
	if len(o.macs)+len(o.eds) == 0 {
		return offered{}, refused(ReasonMalformed)
	}
	return o, nil
}

// verifyStandard: the content signed is "id.timestamp.body"; the message
// is its webhook-id (signed; a retry keeps it).
func verifyStandard(k keys, o offered, body []byte) ([][]byte, bool) {
	macs := macsOf(k.hmac, o.id, ".", o.ts, ".", body)
	for _, sig := range o.macs {
		if anyEqual(macs, sig) {
			return [][]byte{[]byte(o.id)}, true
		}
	}
	if len(k.ed) == 0 || len(o.eds) == 0 {
		return nil, false
	}
	content := make([]byte, 0, len(o.id)+len(o.ts)+2+len(body))
	content = append(append(append(append(append(content, o.id...), '.'), o.ts...), '.'), body...)
	for _, sig := range o.eds {
		for _, pub := range k.ed {
			if ed25519.Verify(pub, content, sig) {
				return [][]byte{[]byte(o.id)}, true
			}
		}
	}
	return nil, false
}

// parseGitHub reads X-Hub-Signature-256: "sha256=" and the hex
// HMAC-SHA256 of the raw body. GitHub signs no timestamp and not the
// delivery id.
func parseGitHub(h http.Header) (offered, error) {
	v := h.Get("X-Hub-Signature-256")
	if v == "" {
		return offered{}, refused(ReasonMissing)
	}
	enc, ok := strings.CutPrefix(v, "sha256=")
	if !ok || len(enc) != hex.EncodedLen(sha256.Size) {
		return offered{}, refused(ReasonMalformed)
	}
	sig, err := hex.DecodeString(enc)
	if err != nil {
		return offered{}, refused(ReasonMalformed)
	}
	return offered{macs: [][]byte{sig}}, nil
}

// parseShopify reads X-Shopify-Hmac-Sha256: the base64 HMAC-SHA256 of the
// raw body; like GitHub, no timestamp and an unsigned webhook id.
func parseShopify(h http.Header) (offered, error) {
	v := h.Get("X-Shopify-Hmac-Sha256")
	if v == "" {
		return offered{}, refused(ReasonMissing)
	}
	if len(v) != base64.StdEncoding.EncodedLen(sha256.Size) {
		return offered{}, refused(ReasonMalformed)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(v)
	if err != nil || len(sig) != sha256.Size {
		return offered{}, refused(ReasonMalformed)
	}
	return offered{macs: [][]byte{sig}}, nil
}

// verifyBody checks an HMAC of the raw body alone (GitHub, Shopify): the
// message is the body it signs, whatever delivery id or spelling of the
// signature comes with it.
func verifyBody(k keys, o offered, body []byte) ([][]byte, bool) {
	if anyEqual(macsOf(k.hmac, "", "", "", "", body), o.macs[0]) {
		return [][]byte{body}, true
	}
	return nil, false
}

// parseStripe reads Stripe-Signature: "t=<unix>,v1=<hex>[,v1=<hex>…]";
// v0 and unknown elements are ignored, as Stripe's libraries do, and so
// is a v1 that is not the hex of 32 bytes.
func parseStripe(h http.Header) (offered, error) {
	v := h.Get("Stripe-Signature")
	if v == "" {
		return offered{}, refused(ReasonMissing)
	}
	var o offered
	v1 := 0
	for el := range strings.SplitSeq(v, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(el), "=")
		switch name {
		case "t":
			o.ts = val
		case "v1":
			if v1++; v1 > maxSignatures || len(val) != hex.EncodedLen(sha256.Size) {
				continue
			}
			if sig, err := hex.DecodeString(val); err == nil {
				o.macs = append(o.macs, sig)
			}
		}
	}
	t, err := unixSeconds(o.ts)
	switch {
	case err != nil:
		return offered{}, refused(ReasonMalformed)
	case v1 == 0:
		return offered{}, refused(ReasonMissing)
	case len(o.macs) == 0:
		return offered{}, refused(ReasonMalformed)
	}
	o.at = t
	return o, nil
}

// verifyStripe: the content signed is "t.body"; the message is what is
// signed, t and the body (whichever v1 matched, however its hex is
// spelled).
func verifyStripe(k keys, o offered, body []byte) ([][]byte, bool) {
	macs := macsOf(k.hmac, o.ts, ".", "", "", body)
	for _, sig := range o.macs {
		if anyEqual(macs, sig) {
			return [][]byte{[]byte(o.ts), body}, true
		}
	}
	return nil, false
}

// macsOf computes HMAC-SHA256(key, a b c d body) for every key, streaming
// (the body is not copied).
func macsOf(ks [][]byte, a, b, c, d string, body []byte) [][]byte {
	out := make([][]byte, 0, len(ks))
	for _, key := range ks {
		m := hmac.New(sha256.New, key)
		writeAll(m, a, b, c, d)
		m.Write(body)
		out = append(out, m.Sum(nil))
	}
	return out
}

func writeAll(m hash.Hash, parts ...string) {
	for _, p := range parts {
		if p != "" {
			m.Write([]byte(p))
		}
	}
}

// anyEqual compares sig with every expected MAC in constant time
// (hmac.Equal), without stopping at the first match's position.
func anyEqual(macs [][]byte, sig []byte) bool {
	ok := false
	for _, m := range macs {
		if hmac.Equal(m, sig) {
			ok = true
		}
	}
	return ok
}

// unixSeconds parses a decimal Unix time in seconds.
func unixSeconds(s string) (time.Time, error) {
	if s == "" || len(s) > 12 {
		return time.Time{}, strconv.ErrSyntax
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, strconv.ErrSyntax
	}
	return time.Unix(n, 0), nil
}
