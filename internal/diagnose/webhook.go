package diagnose

// `tokengate check --config FILE --webhook REQUEST_FILE [--route "METHOD
// PATH"]`: one captured signed webhook through the real route table and
// the real signature verifiers, the replay store replaced by a recorder,
// and everything the verdict rests on.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/signature"
)

// ErrWebhookRefused is Webhook's verdict on a request the gate would not
// forward.
var ErrWebhookRefused = errors.New("the webhook would be refused")

// shownBytes is how much of the signed content is shown.
const shownBytes = 64

// Webhook decides on the raw HTTP request read from in exactly as the
// gate would (the real route table, the route's real signature verifier
// and handler; the upstream and the replay store replaced by recorders,
// so nothing is claimed), then prints to out what the scheme read, the
// exact content signed, how each secret was read (by index, never its
// value), which comparison matched, the timestamp against now, the cause
// of a refusal where trying the alternatives finds one, and the decision
// with the status the gate would send. route, "METHOD PATH", replaces
// the file's request line. nil: forwarded; ErrWebhookRefused: refused.
func Webhook(ctx context.Context, path string, in io.Reader, name, route string, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, explainTimeout)
	defer cancel()
	raw, err := readCapture(in)
	if err != nil {
		return err
	}
	c, err := parseCapture(raw)
	if err != nil {
		return err
	}
	method, target := c.method, c.target
	if route != "" {
		if method, target, err = parseRouteSpec(route); err != nil {
			return err
		}
	}
	cfg, err := config.Load(path, config.Options{})
	if err != nil {
		return err
	}
	if !cfg.Receiving() {
		return fmt.Errorf("%s configures only the calling side (egress): there is no route to check a webhook against", path)
	}
	rec := &claimRecorder{}
	st, sigs, err := build(cfg, rec)
	if err != nil {
		return err
	}
	req := httptest.NewRequestWithContext(ctx, method, target, bytes.NewReader(c.body))
	req.Header = c.header.Clone()
	if !strings.Contains(target, "://") {
		req.Host = c.host
	}
	d, err := decide(cfg, st, sigs, req)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "config   %s\n", path)
	fmt.Fprintf(out, "request  %s %s → %s\n", method, target, describeRoute(d.route))
	fmt.Fprintf(out, "read     %s: %d lines of request line and headers, %s line endings\n", name, c.lines, c.lineEnd)
	for _, n := range c.notes {
		fmt.Fprintf(out, "         %s\n", n)
	}
	w := &webhookCheck{cfg: cfg, c: c, d: d, now: time.Now(), out: out, rec: rec}
	w.explain()
	w.rateLimit(ctx)
	return d.verdict(out, w.limited, "the webhook is good, but the route is past its rate_limit right now", ErrWebhookRefused)
}

// webhookCheck explains the decision on one captured request.
type webhookCheck struct {
	cfg *config.Config
	c   *capture
	d   *decision
	now time.Time
	out io.Writer
	rec *claimRecorder

	sig  *config.Signature
	rd   *signature.Reading
	keys []signature.Key // the route's secrets as its verifier reads them
	// matched is the index of the secret whose signature matches the
	// body as received (-1: none).
	matched int
	// limited: the route's shared bucket is spent right now.
	limited bool
}

func (w *webhookCheck) line(f finding) { fmt.Fprintf(w.out, "  %s\n", f.line()) }
func (w *webhookCheck) ok(format string, a ...any) {
	w.line(finding{summary: fmt.Sprintf(format, a...)})
}
func (w *webhookCheck) no(format string, a ...any) {
	w.line(finding{problem: fmt.Sprintf(format, a...)})
}

// explain prints every section of the explanation, in the order the gate
// checks: the route, the headers, the content and the secrets, the
// comparison, the timestamp, the replay check, and a cause.
func (w *webhookCheck) explain() {
	r := w.d.route
	switch {
	case r == nil:
		fmt.Fprintln(w.out, "route")
		w.no("no route matches this method and path%s", w.signedRoutes())
		return
	case r.Signature == nil:
		fmt.Fprintln(w.out, "route")
		w.no("%s takes a bearer token, not a signature (auth: %s): explain a token with check --token", describeRoute(r), r.AuthMode())
		return
	}
	w.sig = r.Signature
	rd, err := signature.Read(w.sig.Scheme, w.c.header)
	if err != nil {
		w.no("%v", err)
		return
	}
	w.rd, w.matched = rd, -1
	fmt.Fprintf(w.out, "scheme   %s (auth: %s), tolerance %s%s\n", w.sig.Scheme, r.AuthMode(), w.sig.Tolerance.D(), w.timestampNote())
	if r.AuthMode() == config.AuthAny && !rd.Signed {
		fmt.Fprintln(w.out, "         the request carries no signature header: with auth: any, the gate judged its bearer token instead (check --token explains one)")
		w.gateSaid()
		return
	}
	if r.AuthMode() == config.AuthAll {
		fmt.Fprintln(w.out, "         auth: all also requires a bearer token: the decision includes its check (check --token explains one)")
	}
	fmt.Fprintln(w.out, "headers")
	for _, h := range rd.Headers {
		f := finding{summary: fmt.Sprintf("%s: %s — %s", h.Name, shortValue(h.Value), h.Note)}
		if h.Value == "" {
			f.summary = fmt.Sprintf("%s: %s", h.Name, h.Note)
		}
		if !h.OK {
			f.problem = f.summary
		}
		w.line(f)
	}
	if rd.Err != nil {
		w.no("the %s verifier reads no usable signature: %v", w.sig.Scheme, rd.Err)
		w.gateSaid()
		return
	}
	w.content()
	w.secrets()
	w.compare()
	w.timestamp()
	w.replay()
	w.cause()
	w.gateSaid()
}

// gateSaid names the handler's own answer when nothing above explains a
// refusal (the body too large, a token of auth: all, ...).
func (w *webhookCheck) gateSaid() {
	if !w.d.forwarded && w.d.code != "invalid_signature" {
		fmt.Fprintln(w.out, "gate")
		w.no("the gate answered %d %s: %s", w.d.status, w.d.code, w.d.desc)
	}
}

// signedRoutes lists the signed routes, for a request that matches none.
func (w *webhookCheck) signedRoutes() string {
	var names []string
	for i := range w.cfg.Routes {
		if r := &w.cfg.Routes[i]; r.Signature != nil {
			names = append(names, fmt.Sprintf("%s %s %v", describeRoute(r), r.Signature.Scheme, r.Methods))
		}
	}
	if len(names) == 0 {
		return " (no route has a signature block)"
	}
	return "; the signed routes: " + strings.Join(names, "; ")
}

func (w *webhookCheck) timestampNote() string {
	switch w.sig.Scheme {
	case signature.GitHub:
		return "; GitHub signs no timestamp"
	case signature.Shopify:
		return "; Shopify signs no timestamp"
	}
	return ""
}

// content shows the exact bytes signed: length, SHA-256, the first
// bytes and the last ones, with line endings made visible.
func (w *webhookCheck) content() {
	content := w.rd.Content(w.c.body)
	sum := sha256.Sum256(content)
	what := map[string]string{
		signature.GitHub: "the raw body", signature.Shopify: "the raw body",
		signature.Stripe: `"t.body"`, signature.StandardWebhooks: `"webhook-id.webhook-timestamp.body"`,
	}[w.sig.Scheme]
	fmt.Fprintf(w.out, "signed   %s: %d bytes, SHA-256 %s (\\r \\n \\t shown escaped)\n", what, len(content), hex.EncodeToString(sum[:]))
	if len(content) <= shownBytes {
		fmt.Fprintf(w.out, "  all %d bytes: %s\n", len(content), visible(content))
	} else {
		fmt.Fprintf(w.out, "  first %d bytes: %s\n", shownBytes, visible(content[:shownBytes]))
		fmt.Fprintf(w.out, "  last 16 bytes: %s\n", visible(content[len(content)-16:]))
	}
	switch {
	case bytes.HasSuffix(w.c.body, []byte("\r\n")):
		fmt.Fprintln(w.out, `  the body ends with \r\n: that line ending is part of what is signed`)
	case bytes.HasSuffix(w.c.body, []byte("\n")):
		fmt.Fprintln(w.out, `  the body ends with \n: that newline is part of what is signed`)
	default:
		fmt.Fprintln(w.out, "  the body ends without a newline")
	}
}

// secretName is the YAML path of the route's i-th secret.
func secretName(s *config.Signature, i int) string {
	if i < len(s.Secrets) {
		return fmt.Sprintf("secrets[%d]", i)
	}
	return fmt.Sprintf("secret_files[%d]", i-len(s.Secrets))
}

// secrets says how the verifier reads each secret, never its value.
func (w *webhookCheck) secrets() {
	fmt.Fprintln(w.out, "secrets  (how the verifier reads each; never the secret itself)")
	for i, s := range w.sig.AllSecrets() {
		k, err := signature.DecodeSecret(w.sig.Scheme, s)
		if err != nil {
			w.no("%s: %v", secretName(w.sig, i), errors.Unwrap(err))
		} else {
			fmt.Fprintf(w.out, "  %s: %s\n", secretName(w.sig, i), k.Form)
		}
		w.keys = append(w.keys, k)
	}
}

// compare says which secret signs the content as received: "matched" or
// "no match", never the expected signature.
func (w *webhookCheck) compare() {
	fmt.Fprintf(w.out, "compared %d offered signature(s) (%s) with each secret's\n", len(w.rd.Signatures), strings.Join(w.rd.Signatures, ", "))
	for i, k := range w.keys {
		if label, ok := w.rd.Signs(k, w.c.body); ok {
			if w.matched < 0 {
				w.matched = i
			}
			w.ok("%s: matched (%s)", secretName(w.sig, i), label)
		} else {
			w.no("%s: no match", secretName(w.sig, i))
		}
	}
}

// timestamp compares the signed timestamp with now and the tolerance.
func (w *webhookCheck) timestamp() {
	at := w.rd.SignedAt
	if at.IsZero() {
		return
	}
	tol := w.sig.Tolerance.D()
	skew := w.now.Sub(at).Round(time.Second)
	when := fmt.Sprintf("%s ago", skew)
	if skew < 0 {
		when = fmt.Sprintf("%s in the future", -skew)
	}
	fmt.Fprintln(w.out, "time")
	if skew <= tol && skew >= -tol {
		w.ok("signed %s, %s (now %s); tolerance ±%s", at.UTC().Format(time.RFC3339), when, w.now.UTC().Format(time.RFC3339), tol)
		return
	}
	w.no("signed %s, %s (now %s): %s beyond the tolerance of ±%s", at.UTC().Format(time.RFC3339), when, w.now.UTC().Format(time.RFC3339), (abs(skew) - tol).Round(time.Second), tol)
}

// replay says what the replay check did: a recorder answered the claim,
// so nothing was claimed in the real store.
func (w *webhookCheck) replay() {
	if !w.sig.ReplayOn() {
		return
	}
	if w.rec.claimed() > 0 {
		fmt.Fprintln(w.out, "replay")
		w.ok("the message would be claimed as new; check asked no store (a recorder stood in), so nothing is claimed, and a copy delivered within %s would still get 200 duplicate", 2*w.sig.Tolerance.D())
	}
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// shortValue is a header value as sent, escaped, shortened past 24
// characters (a signature is shown only by its start).
func shortValue(v string) string {
	if len(v) > 24 {
		return fmt.Sprintf("%s… (%d characters)", visible([]byte(v[:24])), len(v))
	}
	return visible([]byte(v))
}

// visible shows bytes as text with line endings, tabs and every other
// control or invalid byte escaped (\r \n \t \xNN) and a backslash
// doubled: what was signed is read exactly, and nothing from a capture
// reaches the terminal as a control sequence.
func visible(b []byte) string {
	var s strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		switch {
		case r == '\\':
			s.WriteString(`\\`)
		case r == '\r':
			s.WriteString(`\r`)
		case r == '\n':
			s.WriteString(`\n`)
		case r == '\t':
			s.WriteString(`\t`)
		case r == utf8.RuneError && n <= 1, !unicode.IsPrint(r):
			for _, c := range b[:n] {
				fmt.Fprintf(&s, `\x%02x`, c)
			}
		default:
			s.Write(b[:n])
		}
		b = b[n:]
	}
	return s.String()
}
