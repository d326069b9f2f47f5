package signature

// Reading a request as a route's scheme does, for an explanation
// (tokengate check --webhook): what each header said, the exact content a
// signature covers, and whether one key signs it. Nothing here touches a
// Store, and no secret or expected MAC leaves the package: a Key's bytes
// are unexported, and a comparison answers only yes or no.

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Reading is what a scheme read from a request's headers, through the
// same parser Verify uses.
type Reading struct {
	// Headers are the headers the scheme reads (and the unsigned ones its
	// senders add), in order, each with what was made of it.
	Headers []HeaderRead
	// Err is the parser's verdict, exactly Verify's (an *Error: signature
	// missing or malformed); nil when the headers are usable.
	Err error
	// ID and Timestamp are the signed message id and timestamp as sent
	// ("" where the scheme signs none).
	ID, Timestamp string
	// SignedAt is the signed timestamp; zero when the scheme signs none
	// (or it did not parse).
	SignedAt time.Time
	// Signatures label the usable signatures offered, in the order they
	// are tried ("v1 #1", "v1a #1", "sha256").
	Signatures []string
	// Signed reports whether the scheme's signature header is there at
	// all (a route with auth: any judges a request without it by its
	// bearer token).
	Signed bool
	scheme string
	o      offered
}

// HeaderRead is one header as a scheme read it.
type HeaderRead struct {
	// Name is the header's canonical name.
	Name string
	// Value is the value as sent ("" when absent).
	Value string
	// Note says how it parsed, in plain words.
	Note string
	// OK is false when this header is why the request is refused.
	OK bool
}

// Read parses h as scheme's verifier does, and describes each header.
func Read(scheme string, h http.Header) (*Reading, error) {
	sch, ok := schemes[scheme]
	if !ok {
		return nil, fmt.Errorf("signature: unknown scheme %q (one of %v)", scheme, Schemes)
	}
	o, err := sch.read(h)
	r := &Reading{Err: err, scheme: scheme, o: o, ID: o.id, Timestamp: o.ts, SignedAt: o.at, Signed: h.Get(signatureHeader(scheme)) != ""}
	switch scheme {
	case StandardWebhooks:
		r.Headers = describeStandard(h)
		r.Signatures = labels("v1", len(o.macs), "v1a", len(o.eds))
	case GitHub:
		r.Headers = describeGitHub(h)
		r.Signatures = labels("sha256", len(o.macs), "", 0)
	case Stripe:
		r.Headers = describeStripe(h)
		r.Signatures = labels("v1", len(o.macs), "", 0)
	case Shopify:
		r.Headers = describeShopify(h)
		r.Signatures = labels("hmac", len(o.macs), "", 0)
	}
	return r, nil
}

func labels(a string, na int, b string, nb int) []string {
	var out []string
	for i := range na {
		out = append(out, fmt.Sprintf("%s #%d", a, i+1))
	}
	for i := range nb {
		out = append(out, fmt.Sprintf("%s #%d", b, i+1))
	}
	if len(out) == 1 {
		out[0] = strings.TrimSuffix(out[0], " #1")
	}
	return out
}

// Content is the exact bytes the scheme signs for body: the body
// (github, shopify), "t.body" (stripe), "id.timestamp.body" (standard
// webhooks).
func (r *Reading) Content(body []byte) []byte {
	var prefix string
	switch r.scheme {
	case StandardWebhooks:
		prefix = r.o.id + "." + r.o.ts + "."
	case Stripe:
		prefix = r.o.ts + "."
	}
	return append([]byte(prefix), body...)
}

// Signs reports whether k signs the content the headers describe with
// body, and which offered signature it matched, through the scheme's own
// comparison. It answers yes or no only: the expected signature is never
// returned. False when the headers are not usable (Err).
func (r *Reading) Signs(k Key, body []byte) (string, bool) {
	if r.Err != nil {
		return "", false
	}
	verify := schemes[r.scheme].verify
	for j, label := range r.Signatures {
		one := offered{id: r.o.id, ts: r.o.ts, at: r.o.at}
		if j < len(r.o.macs) {
			one.macs = r.o.macs[j : j+1]
		} else {
			one.eds = r.o.eds[j-len(r.o.macs) : j-len(r.o.macs)+1]
		}
		if _, ok := verify(k.k, one, body); ok {
			return label, true
		}
	}
	return "", false
}

// Key is one secret read one way; its bytes never leave this package.
type Key struct {
	// Form says how the secret was read, e.g. "whsec_ and base64,
	// decoded: a 24-byte HMAC key" (never its bytes).
	Form string
	k    keys
}

// DecodeSecret reads secret exactly as a verifier of scheme does.
func DecodeSecret(scheme, secret string) (Key, error) {
	k, err := decodeSecrets(scheme, []string{secret})
	if err != nil {
		return Key{}, fmt.Errorf("signature: %s: %w", scheme, err)
	}
	switch {
	case len(k.ed) > 0:
		return Key{Form: "whpk_ and base64: an Ed25519 public key (checks v1a)", k: k}, nil
	case scheme != StandardWebhooks:
		return Key{Form: fmt.Sprintf("used as written, %d bytes (%s keys its HMAC with the string's bytes)", len(secret), scheme), k: k}, nil
	case strings.HasPrefix(secret, "whsec_"):
		return Key{Form: fmt.Sprintf("whsec_ and base64, decoded: a %d-byte HMAC key", len(k.hmac[0])), k: k}, nil
	}
	return Key{Form: fmt.Sprintf("base64, decoded: a %d-byte HMAC key", len(k.hmac[0])), k: k}, nil
}

// OtherReadings are the ways a sender may have read secret that scheme
// does not: as raw bytes where the scheme decodes it; decoded (base64
// after whsec_, base64, hex), trimmed of white space or with a newline
// added (a secret kept in a file) where the scheme uses the bytes as
// written. An Ed25519 key has none.
func OtherReadings(scheme, secret string) []Key {
	seen := map[string]bool{}
	if k, err := decodeSecrets(scheme, []string{secret}); err == nil {
		if len(k.ed) > 0 {
			return nil
		}
		for _, b := range k.hmac {
			seen[string(b)] = true
		}
	}
	var out []Key
	add := func(form string, b []byte) {
		if len(b) == 0 || seen[string(b)] {
			return
		}
		seen[string(b)] = true
		out = append(out, Key{Form: form, k: keys{hmac: [][]byte{b}}})
	}
	if scheme == StandardWebhooks {
		add("the whole string as raw bytes, not base64-decoded", []byte(secret))
		if rest, ok := strings.CutPrefix(secret, "whsec_"); ok {
			add("the part after whsec_ as raw bytes, not base64-decoded", []byte(rest))
		}
		return out
	}
	if rest, ok := strings.CutPrefix(secret, "whsec_"); ok {
		if b, err := base64.StdEncoding.DecodeString(rest); err == nil {
			add("whsec_ and base64, decoded (as Standard Webhooks reads a secret)", b)
		}
	}
	if b, err := base64.StdEncoding.DecodeString(secret); err == nil {
		add("base64, decoded", b)
	}
	if b, err := hex.DecodeString(secret); err == nil {
		add("hex, decoded", b)
	}
	if t := strings.TrimSpace(secret); t != secret {
		add("trimmed of its surrounding white space", []byte(t))
	}
	add("with a trailing newline (a secret file or echo kept one)", []byte(secret+"\n"))
	return out
}
