package signature

// What each scheme's headers said, in plain words, for Reading. The
// verdict is the parser's (Reading.Err); these notes say where in the
// header it came from. TestReadingAgreesWithTheParser keeps the two in
// step.

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// header starts a HeaderRead for name: its first value, and a note when
// the header came more than once (only the first is read).
func header(h http.Header, name string) (HeaderRead, bool) {
	vs := h.Values(name)
	hr := HeaderRead{Name: http.CanonicalHeaderKey(name), OK: true}
	if len(vs) == 0 || vs[0] == "" {
		hr.OK, hr.Note = false, "absent"
		return hr, false
	}
	hr.Value = vs[0]
	if len(vs) > 1 {
		hr.Note = fmt.Sprintf("sent %d times, only the first is read; ", len(vs))
	}
	return hr, true
}

// unsigned notes a header its senders add that proves nothing.
func unsigned(h http.Header, name, what string) []HeaderRead {
	if v := h.Get(name); v != "" {
		return []HeaderRead{{Name: http.CanonicalHeaderKey(name), Value: v, Note: what + ": not signed, not read", OK: true}}
	}
	return nil
}

// timestampNote describes a Unix-seconds timestamp as sent.
func timestampNote(ts string) (string, bool) {
	t, err := unixSeconds(ts)
	switch {
	case err == nil:
		return "signed at " + t.UTC().Format(time.RFC3339), true
	case len(ts) == 13 && strings.Trim(ts, "0123456789") == "":
		return "13 digits: milliseconds? the scheme signs Unix seconds", false
	}
	return "not a Unix time in decimal seconds", false
}

func describeStandard(h http.Header) []HeaderRead {
	id, ok := header(h, "Webhook-Id")
	if ok {
		id.Note += "the message id: signed, and the replay key"
	}
	ts, ok := header(h, "Webhook-Timestamp")
	if ok {
		var note string
		note, ts.OK = timestampNote(ts.Value)
		ts.Note += note
	}
	sig, ok := header(h, "Webhook-Signature")
	if !ok {
		return []HeaderRead{id, ts, sig}
	}
	var parts []string
	usable, n := 0, 0
	for entry := range strings.FieldsSeq(sig.Value) {
		if n++; n > maxSignatures {
			parts = append(parts, fmt.Sprintf("entries past the first %d not read", maxSignatures))
			break
		}
		version, enc, _ := strings.Cut(entry, ",")
		want := sha256.Size
		if version == "v1a" {
			want = ed25519.SignatureSize
		}
		b, err := base64.StdEncoding.Strict().DecodeString(enc)
		switch {
		case version != "v1" && version != "v1a":
			parts = append(parts, fmt.Sprintf("%q: not v1 or v1a, ignored", clip(entry)))
		case err != nil:
			parts = append(parts, fmt.Sprintf("%s: not standard base64, ignored", version))
		case len(b) != want:
			parts = append(parts, fmt.Sprintf("%s: %d bytes, want %d, ignored", version, len(b), want))
		default:
			usable++
			parts = append(parts, fmt.Sprintf("%s: base64 of a %d-byte %s", version, want, map[string]string{"v1": "HMAC-SHA256", "v1a": "Ed25519 signature"}[version]))
		}
	}
	sig.Note += strings.Join(parts, "; ")
	if usable == 0 {
		sig.OK = false
		sig.Note += "; no usable v1 or v1a signature"
	}
	return []HeaderRead{id, ts, sig}
}

func describeGitHub(h http.Header) []HeaderRead {
	sig, ok := header(h, "X-Hub-Signature-256")
	if ok {
		enc, prefixed := strings.CutPrefix(sig.Value, "sha256=")
		_, err := hex.DecodeString(enc)
		switch {
		case !prefixed:
			sig.OK, sig.Note = false, sig.Note+"does not start with sha256="
		case len(enc) != hex.EncodedLen(sha256.Size):
			sig.OK, sig.Note = false, sig.Note+fmt.Sprintf("%d characters after sha256=, want 64 hex digits", len(enc))
		case err != nil:
			sig.OK, sig.Note = false, sig.Note+"not hex after sha256="
		default:
			sig.Note += "sha256= and the hex of a 32-byte HMAC-SHA256 of the body"
		}
	} else if h.Get("X-Hub-Signature") != "" {
		sig.Note = "absent: only the SHA-1 X-Hub-Signature came (the gate reads X-Hub-Signature-256, which GitHub sends with it whenever the hook has a secret)"
	}
	out := []HeaderRead{sig}
	out = append(out, unsigned(h, "X-Hub-Signature", "the older SHA-1 signature")...)
	return append(out, unsigned(h, "X-GitHub-Delivery", "the delivery id")...)
}

func describeShopify(h http.Header) []HeaderRead {
	sig, ok := header(h, "X-Shopify-Hmac-Sha256")
	if ok {
		_, err := base64.StdEncoding.Strict().DecodeString(sig.Value)
		_, herr := hex.DecodeString(sig.Value)
		switch {
		case len(sig.Value) == hex.EncodedLen(sha256.Size) && herr == nil:
			sig.OK, sig.Note = false, sig.Note+"64 hex digits: Shopify sends the HMAC in base64 (44 characters); the sender encoded it in hex"
		case len(sig.Value) != base64.StdEncoding.EncodedLen(sha256.Size):
			sig.OK, sig.Note = false, sig.Note+fmt.Sprintf("%d characters, want 44 (the base64 of a 32-byte HMAC-SHA256)", len(sig.Value))
		case err != nil:
			sig.OK, sig.Note = false, sig.Note+"not standard base64"
		default:
			sig.Note += "the base64 of a 32-byte HMAC-SHA256 of the body"
		}
	}
	return append([]HeaderRead{sig}, unsigned(h, "X-Shopify-Webhook-Id", "the webhook id")...)
}

func describeStripe(h http.Header) []HeaderRead {
	sig, ok := header(h, "Stripe-Signature")
	if !ok {
		return []HeaderRead{sig}
	}
	var ts string
	var hasT bool
	v1, good := 0, 0
	var ignored []string
	for el := range strings.SplitSeq(sig.Value, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(el), "=")
		switch name {
		case "t":
			ts, hasT = val, true
		case "v1":
			if v1++; v1 > maxSignatures {
				continue
			}
			if _, err := hex.DecodeString(val); err == nil && len(val) == hex.EncodedLen(sha256.Size) {
				good++
			}
		default:
			ignored = append(ignored, name)
		}
	}
	var parts []string
	switch tsNote, tsOK := timestampNote(ts); {
	case !hasT:
		sig.OK = false
		parts = append(parts, "no t= (the signed timestamp)")
	case !tsOK:
		sig.OK = false
		parts = append(parts, "t="+tsNote)
	default:
		parts = append(parts, "t: "+tsNote)
	}
	switch {
	case v1 == 0:
		sig.OK = false
		parts = append(parts, "no v1= signature")
	case good == 0:
		sig.OK = false
		parts = append(parts, fmt.Sprintf("%d v1=, none the hex of a 32-byte HMAC-SHA256", v1))
	default:
		parts = append(parts, fmt.Sprintf("%d v1= (%d the hex of a 32-byte HMAC-SHA256 of \"t.body\")", v1, good))
	}
	if len(ignored) > 0 {
		parts = append(parts, fmt.Sprintf("ignored: %s", strings.Join(ignored, ", ")))
	}
	sig.Note += strings.Join(parts, "; ")
	return []HeaderRead{sig}
}

// clip shortens what a header said for a note.
func clip(s string) string {
	if len(s) > 12 {
		return s[:12] + "…"
	}
	return s
}
