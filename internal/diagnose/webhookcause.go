package diagnose

// The usual causes of a refused signed webhook, each found by trying
// what it would have changed: a body re-serialised on the way, a secret
// read raw where the scheme decodes it (or the reverse), another route's
// secret, a clock off by more than the tolerance.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tokengate/tokengate/signature"
)

// cause names, in plain words, why no secret signs the content as
// received, when trying the alternatives finds it; with a signature that
// matched, a timestamp out of tolerance is the cause.
func (w *webhookCheck) cause() {
	if w.matched >= 0 {
		w.clockCause()
		return
	}
	variants := bodyVariants(w.c.body)
	fmt.Fprintln(w.out, "cause    (alternatives tried against the offered signatures)")
	found := w.bodyCause(variants)
	n, secretFound := w.secretCause()
	found = secretFound || found
	m, routeFound := w.otherRouteCause()
	if found = routeFound || found; !found {
		w.no("none matched: %d re-encodings of the body, %d other readings of the route's secrets, %d secrets of other signed routes. The sender signs other bytes, or with a secret not configured here", len(variants), n, m)
	}
}

// variant is the body as something on the way may have changed it, and
// what that change means.
type variant struct {
	what, why string
	body      []byte
}

const reserialised = "something between the sender and here (a proxy, an API gateway, a framework that parses and re-encodes JSON, or the tool that made this capture) changed the body's bytes; the gate must receive the exact bytes the sender signed"

// bodyVariants are the bodies an editor, a line-ending conversion or a
// proxy's re-serialisation would turn body into (or back from), the
// smallest change first.
func bodyVariants(body []byte) []variant {
	var out []variant
	add := func(what, why string, b []byte) {
		if bytes.Equal(b, body) {
			return
		}
		for _, v := range out {
			if bytes.Equal(v.body, b) {
				return
			}
		}
		out = append(out, variant{what, why, b})
	}
	switch {
	case bytes.HasSuffix(body, []byte("\r\n")):
		add(`the body without its trailing \r\n`, "the sender signed the body without it: the file (an editor) or something on the way added it", body[:len(body)-2])
	case bytes.HasSuffix(body, []byte("\n")):
		add(`the body without its trailing \n`, "the sender signed the body without it: the file (an editor) or something on the way added it", body[:len(body)-1])
	default:
		add(`the body with a trailing \n`, "the sender signed a trailing newline that is not here: something on the way (or the capture) dropped it", append(bytes.Clone(body), '\n'))
	}
	if bytes.Contains(body, []byte("\r\n")) {
		add(`the body with its \r\n line endings made \n`, "something on the way (or the capture, or an editor) converted the body's line endings", bytes.ReplaceAll(body, []byte("\r\n"), []byte("\n")))
	} else if bytes.Contains(body, []byte("\n")) {
		add(`the body with its \n line endings made \r\n`, "something on the way (or the capture, or an editor) converted the body's line endings", bytes.ReplaceAll(body, []byte("\n"), []byte("\r\n")))
	}
	if json.Valid(body) {
		var compact bytes.Buffer
		_ = json.Compact(&compact, body)
		add("the JSON re-encoded compactly (white space removed)", reserialised, compact.Bytes())
		add("the JSON re-encoded compactly, with a trailing newline", reserialised, append(bytes.Clone(compact.Bytes()), '\n'))
		add(`the JSON re-encoded with a space after each ":" and "," (as Python's json.dumps writes it)`, reserialised, spaced(compact.Bytes()))
		for _, ind := range []struct{ name, s string }{{"2 spaces", "  "}, {"4 spaces", "    "}, {"tabs", "\t"}} {
			var pretty bytes.Buffer
			_ = json.Indent(&pretty, compact.Bytes(), "", ind.s)
			add("the JSON pretty-printed, indented with "+ind.name, reserialised, pretty.Bytes())
			add("the JSON pretty-printed, indented with "+ind.name+", with a trailing newline", reserialised, append(pretty.Bytes(), '\n'))
		}
	}
	return out
}

// spaced adds a space after each ':' and ',' outside strings of compact
// JSON.
func spaced(compact []byte) []byte {
	out := make([]byte, 0, len(compact)+len(compact)/4)
	inString, escaped := false, false
	for _, c := range compact {
		out = append(out, c)
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case !inString && (c == ':' || c == ','):
			out = append(out, ' ')
		}
	}
	return out
}

// bodyCause: one of the route's secrets signs a variant of the body;
// the first found (the smallest change first) is named.
func (w *webhookCheck) bodyCause(variants []variant) bool {
	for _, v := range variants {
		for i, k := range w.keys {
			if label, ok := w.rd.Signs(k, v.body); ok {
				w.no("body changed: %s matches (%s) over %s, not over the body as received: %s", secretName(w.sig, i), label, v.what, v.why)
				return true
			}
		}
	}
	return false
}

// secretCause: one of the route's secrets, read another way than the
// scheme reads it, signs the body. n is how many readings were tried.
func (w *webhookCheck) secretCause() (n int, found bool) {
	for i, s := range w.sig.AllSecrets() {
		for _, k := range signature.OtherReadings(w.sig.Scheme, s) {
			n++
			if label, ok := w.rd.Signs(k, w.c.body); ok {
				found = true
				w.no("secret read differently: %s matches (%s) when read as %s, but the %s verifier reads it as: %s. The sender and the gate read the same secret differently", secretName(w.sig, i), label, k.Form, w.sig.Scheme, w.keys[i].Form)
			}
		}
	}
	return n, found
}

// otherRouteCause: a secret of another signed route signs the body (read
// as this route's scheme reads it, or as its own route's does). The
// route is named, never the secret. m is how many secrets were tried.
func (w *webhookCheck) otherRouteCause() (m int, found bool) {
	for j := range w.cfg.Routes {
		r := &w.cfg.Routes[j]
		if r == w.d.route || r.Signature == nil {
			continue
		}
		for i, s := range r.Signature.AllSecrets() {
			m++
			if label, ok := w.signsAs(s, w.sig.Scheme, r.Signature.Scheme); ok {
				found = true
				w.no("another route's secret: %s of %s (routes[%d]) matches (%s): the sender was given that route's secret, or sends this route's webhooks with it; check the sender's URL and secret", secretName(r.Signature, i), describeRoute(r), j, label)
			}
		}
	}
	return m, found
}

// signsAs tries secret read as each of schemes does.
func (w *webhookCheck) signsAs(secret string, schemes ...string) (string, bool) {
	for _, sch := range schemes {
		if k, err := signature.DecodeSecret(sch, secret); err == nil {
			if label, ok := w.rd.Signs(k, w.c.body); ok {
				return label, true
			}
		}
	}
	return "", false
}

// clockCause: the signature matched, the timestamp is out of tolerance;
// by how much, and, with a Date header, whether the sender's clock or
// the capture's age is to blame.
func (w *webhookCheck) clockCause() {
	at, tol := w.rd.SignedAt, w.sig.Tolerance.D()
	skew := w.now.Sub(at)
	if at.IsZero() || abs(skew) <= tol {
		return
	}
	fmt.Fprintln(w.out, "cause")
	dir := "old"
	if skew < 0 {
		dir = "ahead of now"
	}
	w.no("clock: the signature is right, but the timestamp is %s %s, %s beyond the tolerance of ±%s: the sender's clock is off by at least that, or the message waited (a queue, a retry of an old message), or this capture is older than the tolerance (check one within %s of its delivery)",
		abs(skew).Round(time.Second), dir, (abs(skew) - tol).Round(time.Second), tol, tol)
	if w.c.date.IsZero() {
		return
	}
	lag, age := w.c.date.Sub(at), w.now.Sub(w.c.date)
	switch {
	case abs(lag) > tol:
		w.no("the capture's Date header is %s after the signed time: the timestamp was already out of tolerance when the request was sent (the sender's clock, or a queued retry)", lag.Round(time.Second))
	case abs(age) > tol:
		fmt.Fprintf(w.out, "  · the capture's Date header is %s after the signed time and %s before now: the capture is old, not the sender's clock; a fresh delivery would pass\n", lag.Round(time.Second), age.Round(time.Second))
	}
}
