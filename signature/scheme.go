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

// checked is what a scheme found in a request: the signed values that
// identify the message against replays (never a spelling the sender
// chose: no signature text, no unsigned header), and the signed timestamp
// (zero when the scheme signs none).
type checked struct {
	identity  [][]byte
	timestamp time.Time
}

// verifyStandard checks Standard Webhooks: the content signed is
// "id.timestamp.body"; webhook-signature is a space-separated list of
// "v1,<base64 HMAC-SHA256>" and "v1a,<base64 Ed25519>".
func verifyStandard(k keys, h http.Header, body []byte) (checked, error) {
	id, ts, sigs := h.Get("Webhook-Id"), h.Get("Webhook-Timestamp"), h.Get("Webhook-Signature")
	if id == "" || ts == "" || sigs == "" {
		return checked{}, refused(ReasonMissing)
	}
	t, err := unixSeconds(ts)
	if err != nil {
		return checked{}, refused(ReasonMalformed)
	}
	macs := macsOf(k.hmac, id, ".", ts, ".", body)
	var content []byte // for v1a only, built on first need
	n := 0
	for _, entry := range strings.Fields(sigs) {
		if n++; n > maxSignatures {
			break
		}
		version, enc, ok := strings.Cut(entry, ",")
		if !ok {
			continue
		}
		sig, err := base64.StdEncoding.Strict().DecodeString(enc)
		if err != nil {
			continue
		}
		switch version {
		case "v1":
			if anyEqual(macs, sig) {
				return checked{identity: [][]byte{[]byte(id)}, timestamp: t}, nil
			}
		case "v1a":
			if len(k.ed) == 0 || len(sig) != ed25519.SignatureSize {
				continue
			}
			if content == nil {
				content = make([]byte, 0, len(id)+len(ts)+2+len(body))
				content = append(append(append(append(append(content, id...), '.'), ts...), '.'), body...)
			}
			for _, pub := range k.ed {
				if ed25519.Verify(pub, content, sig) {
					return checked{identity: [][]byte{[]byte(id)}, timestamp: t}, nil
				}
			}
		}
	}
	return checked{}, refused(ReasonMismatch)
}

// verifyGitHub checks X-Hub-Signature-256: "sha256=" and the hex
// HMAC-SHA256 of the raw body. GitHub signs no timestamp and not the
// delivery id: the message is the body it signs, whatever delivery id
// or spelling of the hex comes with it.
func verifyGitHub(k keys, h http.Header, body []byte) (checked, error) {
	v := h.Get("X-Hub-Signature-256")
	if v == "" {
		return checked{}, refused(ReasonMissing)
	}
	enc, ok := strings.CutPrefix(v, "sha256=")
	sig, err := hex.DecodeString(enc)
	if !ok || err != nil || len(sig) != sha256.Size {
		return checked{}, refused(ReasonMalformed)
	}
	if !anyEqual(macsOf(k.hmac, "", "", "", "", body), sig) {
		return checked{}, refused(ReasonMismatch)
	}
	return checked{identity: [][]byte{body}}, nil
}

// verifyShopify checks X-Shopify-Hmac-Sha256: the base64 HMAC-SHA256 of
// the raw body; like GitHub, no timestamp and an unsigned webhook id, so
// the message is the body it signs.
func verifyShopify(k keys, h http.Header, body []byte) (checked, error) {
	v := h.Get("X-Shopify-Hmac-Sha256")
	if v == "" {
		return checked{}, refused(ReasonMissing)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(v)
	if err != nil || len(sig) != sha256.Size {
		return checked{}, refused(ReasonMalformed)
	}
	if !anyEqual(macsOf(k.hmac, "", "", "", "", body), sig) {
		return checked{}, refused(ReasonMismatch)
	}
	return checked{identity: [][]byte{body}}, nil
}

// verifyStripe checks Stripe-Signature: "t=<unix>,v1=<hex>[,v1=<hex>…]"
// over "t.body"; v0 and unknown elements are ignored, as Stripe's
// libraries do. The message is what is signed: t and the body (whichever
// v1 matched, however its hex is spelled).
func verifyStripe(k keys, h http.Header, body []byte) (checked, error) {
	v := h.Get("Stripe-Signature")
	if v == "" {
		return checked{}, refused(ReasonMissing)
	}
	var ts string
	var sigs []string
	for _, el := range strings.Split(v, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(el), "=")
		switch name {
		case "t":
			ts = val
		case "v1":
			if len(sigs) < maxSignatures {
				sigs = append(sigs, val)
			}
		}
	}
	t, err := unixSeconds(ts)
	if err != nil {
		return checked{}, refused(ReasonMalformed)
	}
	if len(sigs) == 0 {
		return checked{}, refused(ReasonMissing)
	}
	macs := macsOf(k.hmac, ts, ".", "", "", body)
	for _, s := range sigs {
		sig, err := hex.DecodeString(s)
		if err == nil && anyEqual(macs, sig) {
			return checked{identity: [][]byte{[]byte(ts), body}, timestamp: t}, nil
		}
	}
	return checked{}, refused(ReasonMismatch)
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
