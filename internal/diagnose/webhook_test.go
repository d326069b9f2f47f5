package diagnose

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/stack"
	"github.com/tokengate/tokengate/signature/redistest"
)

// Secrets of the test configuration; every spelling of each must stay
// out of check --webhook's output.
const (
	ghSecret     = "gh-webhook-secret-Zq81"
	stripeSecret = "whsec_c3RyaXBlLWtleS1ieXRlcy05OTE=" // Stripe keys its HMAC with the whole string
	shopSecret   = "shpss_0123456789abcdef"
	swKeyB64     = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	swSecret     = "whsec_" + swKeyB64
)

func mac(key []byte, parts ...string) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

func githubSig(key, body string) string {
	return "sha256=" + hex.EncodeToString(mac([]byte(key), body))
}

func stripeSig(key string, t time.Time, body string) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac([]byte(key), ts, ".", body))
}

func shopifySig(key, body string) string {
	return base64.StdEncoding.EncodeToString(mac([]byte(key), body))
}

// standardHeaders are Standard Webhooks headers signed with the HMAC key
// bytes (v1), or with an Ed25519 private key (v1a) when priv is set.
func standardHeaders(key []byte, priv ed25519.PrivateKey, id string, t time.Time, body string) [][2]string {
	ts := strconv.FormatInt(t.Unix(), 10)
	sig := "v1," + base64.StdEncoding.EncodeToString(mac(key, id, ".", ts, ".", body))
	if priv != nil {
		sig = "v1a," + base64.StdEncoding.EncodeToString(ed25519.Sign(priv, []byte(id+"."+ts+"."+body)))
	}
	return [][2]string{{"Webhook-Id", id}, {"Webhook-Timestamp", ts}, {"Webhook-Signature", sig}}
}

// rawRequest is a request file: CRLF or bare LF lines, with a
// Content-Length or without.
func rawRequest(path string, headers [][2]string, body string, crlf, withLength bool) string {
	eol := "\n"
	if crlf {
		eol = "\r\n"
	}
	var b strings.Builder
	b.WriteString("POST " + path + " HTTP/1.1" + eol + "Host: hooks.example.com" + eol + "Content-Type: application/json" + eol)
	for _, h := range headers {
		b.WriteString(h[0] + ": " + h[1] + eol)
	}
	if withLength {
		b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + eol)
	}
	return b.String() + eol + body
}

const webhookRoutes = `
upstream: http://127.0.0.1:9
routes:
  - name: github
    path: /webhooks/github
    methods: [POST]
    signature: { scheme: github, secrets: ["${T_GH}"] }
  - name: stripe
    path: /webhooks/stripe
    methods: [POST]
    signature: { scheme: stripe, secrets: ["${T_STRIPE}"] }
  - name: shopify
    path: /webhooks/shopify
    methods: [POST]
    signature: { scheme: shopify, secrets: ["${T_SHOP}"] }
  - name: standard
    path: /webhooks/standard
    methods: [POST]
    signature: { scheme: standard-webhooks, secrets: ["${T_SW}", "${T_SW_ED}"] }
`

// webhookCase is one request file and what check --webhook must say.
type webhookCase struct {
	name string
	file string
	code int      // 0 forwarded, 1 refused
	want []string // each a substring of the output
	// match are regular expressions the output must match (values that
	// move with the clock).
	match []string
	// expected are the MACs the gate computes for this request, in
	// every spelling: a refusal must never print them.
	expected []string
}

func (tc webhookCase) run(t *testing.T, path string, secrets []string) {
	var out bytes.Buffer
	err := Webhook(context.Background(), path, strings.NewReader(tc.file), "req.http", "", &out)
	got := out.String()
	code := 0
	if errors.Is(err, ErrWebhookRefused) {
		code = 1
	} else if err != nil {
		code = -1
	}
	if code != tc.code {
		t.Errorf("exit %d (%v), want %d", code, err, tc.code)
	}
	for _, w := range tc.want {
		if !strings.Contains(got, w) {
			t.Errorf("output lacks %q", w)
		}
	}
	for _, m := range tc.match {
		if !regexp.MustCompile(m).MatchString(got) {
			t.Errorf("output does not match %q", m)
		}
	}
	for _, s := range secrets {
		if strings.Contains(got, s) {
			t.Errorf("the output holds a secret (or a spelling of one): %q", s)
		}
	}
	for _, m := range tc.expected {
		if strings.Contains(got, m) || strings.Contains(got, m[:12]) {
			t.Errorf("the output holds the expected signature %q (or its start)", m)
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("output:\n%s", got)
	}
}

// spellings are a secret's string and its base64, base64url and hex, and
// the same of the key bytes it decodes to.
func spellings(secret string, key []byte) []string {
	var out []string
	for _, b := range [][]byte{[]byte(secret), key} {
		if len(b) == 0 {
			continue
		}
		out = append(out, string(b), base64.StdEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b), hex.EncodeToString(b))
	}
	return out
}

// TestCheckWebhookExplains runs check --webhook on real signed requests
// of every scheme (HMACs and an Ed25519 signature computed here) and on
// the usual refusals, each found by trying its alternative: the decision,
// the status, the cause in plain words, and never a secret nor the
// expected signature in the output.
func TestCheckWebhookExplains(t *testing.T) {
	swKey, _ := base64.StdEncoding.DecodeString(swKeyB64)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	swEd := "whpk_" + base64.StdEncoding.EncodeToString(pub)
	t.Setenv("T_GH", ghSecret)
	t.Setenv("T_STRIPE", stripeSecret)
	t.Setenv("T_SHOP", shopSecret)
	t.Setenv("T_SW", swSecret)
	t.Setenv("T_SW_ED", swEd)
	path := writeConfig(t, webhookRoutes)
	stripeKey, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(stripeSecret, "whsec_"))
	var secrets []string
	secrets = append(secrets, spellings(ghSecret, nil)...)
	secrets = append(secrets, spellings(stripeSecret, stripeKey)...)
	secrets = append(secrets, spellings(shopSecret, nil)...)
	secrets = append(secrets, spellings(swSecret, swKey)...)
	secrets = append(secrets, spellings("", priv)...)

	now := time.Now()
	body := `{"id":"evt_1","type":"order.paid","data":{"amount":1200}}`
	pretty := "{\n  \"id\": \"evt_1\",\n  \"type\": \"order.paid\",\n  \"data\": {\n    \"amount\": 1200\n  }\n}"
	ghExpected := func(b string) []string {
		m := mac([]byte(ghSecret), b)
		return []string{hex.EncodeToString(m), base64.StdEncoding.EncodeToString(m)}
	}
	tests := []webhookCase{
		{
			name: "github accepted, CRLF",
			file: rawRequest("/webhooks/github", [][2]string{{"X-Hub-Signature-256", githubSig(ghSecret, body)}, {"X-GitHub-Delivery", "72d3162e"}}, body, true, true),
			want: []string{
				`request  POST /webhooks/github → route "github" (path /webhooks/github)`,
				`CRLF line endings`, `Content-Length 57, as in the file`,
				`✓ X-Hub-Signature-256: sha256=`, `sha256= and the hex of a 32-byte HMAC-SHA256 of the body`,
				`X-Github-Delivery: 72d3162e — the delivery id: not signed, not read`,
				fmt.Sprintf(`signed   the raw body: 57 bytes, SHA-256 %x`, sha256.Sum256([]byte(body))),
				`all 57 bytes: ` + body,
				`secrets[0]: used as written, 22 bytes (github keys its HMAC with the string's bytes)`,
				`✓ secrets[0]: matched (sha256)`,
				`✓ the message would be claimed as new; check asked no store`,
				`decision FORWARDED`,
			},
		},
		{
			name: "stripe accepted, bare LF",
			file: rawRequest("/webhooks/stripe", [][2]string{{"Stripe-Signature", stripeSig(stripeSecret, now, body) + ",v0=00"}}, body, false, true),
			want: []string{
				`bare LF line endings`,
				`✓ Stripe-Signature: t=`, `1 v1= (1 the hex of a 32-byte HMAC-SHA256 of "t.body"); ignored: v0`,
				`signed   "t.body": 68 bytes`, `first 64 bytes: ` + strconv.FormatInt(now.Unix(), 10) + "." + body[:53], `last 16 bytes: {"amount":1200}}`,
				`secrets[0]: used as written, 34 bytes (stripe keys its HMAC with the string's bytes)`,
				`✓ secrets[0]: matched (v1)`, `tolerance ±5m0s`,
				`decision FORWARDED`,
			},
		},
		{
			name: "shopify accepted",
			file: rawRequest("/webhooks/shopify", [][2]string{{"X-Shopify-Hmac-Sha256", shopifySig(shopSecret, body)}}, body, true, true),
			want: []string{`the base64 of a 32-byte HMAC-SHA256 of the body`, `✓ secrets[0]: matched (hmac)`, `decision FORWARDED`},
		},
		{
			name: "standard webhooks v1 accepted",
			file: rawRequest("/webhooks/standard", standardHeaders(swKey, nil, "msg_1", now, body), body, true, true),
			want: []string{
				`Webhook-Id: msg_1 — the message id: signed, and the replay key`,
				`v1: base64 of a 32-byte HMAC-SHA256`,
				`signed   "webhook-id.webhook-timestamp.body"`, `first 64 bytes: msg_1.`,
				`secrets[0]: whsec_ and base64, decoded: a 24-byte HMAC key`,
				`secrets[1]: whpk_ and base64: an Ed25519 public key (checks v1a)`,
				`✓ secrets[0]: matched (v1)`, `✗ secrets[1]: no match`,
				`decision FORWARDED`,
			},
		},
		{
			name: "standard webhooks v1a (Ed25519) accepted",
			file: rawRequest("/webhooks/standard", standardHeaders(nil, priv, "msg_2", now, body), body, false, true),
			want: []string{`v1a: base64 of a 64-byte Ed25519 signature`, `✓ secrets[1]: matched (v1a)`, `decision FORWARDED`},
		},
		{
			name: "body re-serialised by a proxy",
			file: rawRequest("/webhooks/github", [][2]string{{"X-Hub-Signature-256", githubSig(ghSecret, body)}}, pretty, true, true),
			code: 1, expected: ghExpected(pretty),
			want: []string{
				`first 64 bytes: {\n  "id": "evt_1",\n`, `last 16 bytes: unt": 1200\n  }\n}`,
				`✗ secrets[0]: no match`,
				`✗ body changed: secrets[0] matches (sha256) over the JSON re-encoded compactly (white space removed), not over the body as received`,
				`decision REFUSED: 401 invalid_signature "signature mismatch"`,
			},
		},
		{
			name: "trailing newline added by an editor, no Content-Length",
			file: rawRequest("/webhooks/github", [][2]string{{"X-Hub-Signature-256", githubSig(ghSecret, body)}}, body+"\n", false, false),
			code: 1, expected: ghExpected(body + "\n"),
			want: []string{
				`no Content-Length: the body is everything after the blank line, 58 bytes`,
				`the body ends with \n: that newline is part of what is signed`,
				`✗ body changed: secrets[0] matches (sha256) over the body without its trailing \n`,
				`decision REFUSED: 401 invalid_signature "signature mismatch"`,
			},
		},
		{
			name: "stripe secret decoded by the sender",
			file: rawRequest("/webhooks/stripe", [][2]string{{"Stripe-Signature", func() string {
				ts := strconv.FormatInt(now.Unix(), 10)
				return "t=" + ts + ",v1=" + hex.EncodeToString(mac(stripeKey, ts, ".", body))
			}()}}, body, true, true),
			code: 1,
			want: []string{
				`✗ secret read differently: secrets[0] matches (v1) when read as whsec_ and base64, decoded (as Standard Webhooks reads a secret), but the stripe verifier reads it as: used as written`,
				`decision REFUSED: 401 invalid_signature "signature mismatch"`,
			},
		},
		{
			name: "standard webhooks secret used raw by the sender",
			file: rawRequest("/webhooks/standard", standardHeaders([]byte(swSecret), nil, "msg_3", now, body), body, true, true),
			code: 1,
			want: []string{
				`✗ secret read differently: secrets[0] matches (v1) when read as the whole string as raw bytes, not base64-decoded, but the standard-webhooks verifier reads it as: whsec_ and base64, decoded`,
				`decision REFUSED: 401 invalid_signature "signature mismatch"`,
			},
		},
		{
			name: "stale timestamp",
			file: rawRequest("/webhooks/stripe", [][2]string{{"Stripe-Signature", stripeSig(stripeSecret, now.Add(-7*time.Minute), body)}}, body, true, true),
			code: 1,
			want: []string{
				`✓ secrets[0]: matched (v1)`,
				`decision REFUSED: 401 invalid_signature "timestamp outside tolerance"`,
			},
			match: []string{
				`✗ signed \S+, 7m\d+s ago \(now \S+\): 2m\d+s beyond the tolerance of ±5m0s`,
				`✗ clock: the signature is right, but the timestamp is 7m\d+s old, 2m\d+s beyond the tolerance of ±5m0s`,
			},
		},
		{
			name: "another route's secret",
			file: rawRequest("/webhooks/github", [][2]string{{"X-Hub-Signature-256", githubSig(shopSecret, body)}}, body, true, true),
			code: 1, expected: ghExpected(body),
			want: []string{
				`✗ another route's secret: secrets[0] of route "shopify" (path /webhooks/shopify) (routes[2]) matches (sha256)`,
				`decision REFUSED: 401 invalid_signature "signature mismatch"`,
			},
		},
		{
			name: "missing header",
			file: rawRequest("/webhooks/github", [][2]string{{"X-Hub-Signature", "sha1=0123"}}, body, true, true),
			code: 1,
			want: []string{
				`✗ X-Hub-Signature-256: absent: only the SHA-1 X-Hub-Signature came`,
				`✗ the github verifier reads no usable signature: signature missing`,
				`decision REFUSED: 401 invalid_signature "signature missing"`,
			},
		},
		{
			name: "malformed header: shopify HMAC in hex",
			file: rawRequest("/webhooks/shopify", [][2]string{{"X-Shopify-Hmac-Sha256", hex.EncodeToString(mac([]byte(shopSecret), body))}}, body, true, true),
			code: 1,
			want: []string{
				`64 hex digits: Shopify sends the HMAC in base64 (44 characters); the sender encoded it in hex`,
				`decision REFUSED: 401 invalid_signature "signature malformed"`,
			},
		},
		{
			name: "no signature found at all",
			file: rawRequest("/webhooks/github", [][2]string{{"X-Hub-Signature-256", githubSig("some other secret", body)}}, body, true, true),
			code: 1, expected: ghExpected(body),
			want: []string{`✗ none matched: 8 re-encodings of the body, 1 other readings of the route's secrets, 4 secrets of other signed routes`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, path, secrets) })
	}
}

// TestCheckWebhookClaimsNothing: a message checked with check --webhook
// is not claimed in the configured replay store (a real redis-server):
// the recorder stood in for it, so the sender's real delivery is not
// taken for a duplicate.
func TestCheckWebhookClaimsNothing(t *testing.T) {
	srv := redistest.Start(t)
	t.Setenv("T_GH", ghSecret)
	path := writeConfig(t, fmt.Sprintf(`
upstream: http://127.0.0.1:9
signatures: { replay_store: %q }
routes:
  - name: github
    path: /webhooks/github
    signature: { scheme: github, secrets: ["${T_GH}"] }
`, srv.URL()))
	body := `{"zen":"Keep it logically awesome."}`
	file := rawRequest("/webhooks/github", [][2]string{{"X-Hub-Signature-256", githubSig(ghSecret, body)}}, body, true, true)
	for i := range 2 { // the second check is no duplicate either
		var out bytes.Buffer
		if err := Webhook(context.Background(), path, strings.NewReader(file), "req.http", "", &out); err != nil {
			t.Fatalf("check %d: %v\n%s", i+1, err, out.String())
		}
	}
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := rc.DBSize(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		keys, _ := rc.Keys(ctx, "*").Result()
		t.Fatalf("check --webhook wrote %d keys to the replay store: %q", n, keys)
	}
}

// TestCheckWebhookSaysTheRouteRateLimit: check --webhook names the
// matched route's rate_limit and, with a redis: block, reads the route's
// one signature bucket without taking from it: once a gate has spent it,
// a well-signed webhook is REFUSED 429, as the gate would answer. A
// bucket per address is named, not looked up; without Redis it says
// check cannot see the gates' memory.
func TestCheckWebhookSaysTheRouteRateLimit(t *testing.T) {
	srv := redistest.Start(t)
	t.Setenv("T_GH", ghSecret)
	recv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer recv.Close()
	routes := fmt.Sprintf(`
upstream: %s
routes:
  - name: github
    path: /webhooks/github
    signature: { scheme: github, secrets: ["${T_GH}"] }
    rate_limit: { key: signature_route, rate: 1/h, burst: 1 }
  - name: github-by-ip
    path: /webhooks/github-by-ip
    signature: { scheme: github, secrets: ["${T_GH}"] }
    rate_limit: { key: remote_ip, rate: 1/h, burst: 1 }
`, recv.URL)
	shared := writeConfig(t, routes+fmt.Sprintf("redis: { url: %q }\n", srv.URL()))
	memory := writeConfig(t, routes)
	body := `{"zen":"Keep it logically awesome."}`
	file := func(path string) string {
		return rawRequest(path, [][2]string{{"X-Hub-Signature-256", githubSig(ghSecret, body)}, {"X-GitHub-Delivery", "72d3162e"}}, body, true, true)
	}
	check := func(cfg, path string) (string, error) {
		var out bytes.Buffer
		err := Webhook(context.Background(), cfg, strings.NewReader(file(path)), "req.http", "", &out)
		return out.String(), err
	}
	const header = "rate     rate_limit 1/h, burst 1 per %s (check does not count this request)"
	cases := []struct {
		name, cfg, path, want string
	}{
		{"redis, fresh bucket", shared, "/webhooks/github", "✓ the route's one bucket has 1.0 of 1 requests left now (read in Redis without taking one)"},
		{"redis, fresh bucket, checked again", shared, "/webhooks/github", "✓ the route's one bucket has 1.0 of 1 requests left now"},
		{"memory", memory, "/webhooks/github", "✓ the route's one bucket is counted in each running gate's memory, which check cannot see"},
		{"per address", shared, "/webhooks/github-by-ip", "✓ counted per client address (resolved through trusted_proxies), which a captured request does not carry: not looked up"},
	}
	for _, c := range cases {
		key := config.RateKeySignatureRoute
		if strings.HasSuffix(c.path, "by-ip") {
			key = config.RateKeyRemoteIP
		}
		out, err := check(c.cfg, c.path)
		if err != nil || !strings.Contains(out, fmt.Sprintf(header, key)) || !strings.Contains(out, c.want) || !strings.Contains(out, "decision FORWARDED") {
			t.Fatalf("%s: %v\n%s\nwant %q", c.name, err, out, c.want)
		}
	}
	// A gate on the shared configuration spends the route's bucket.
	cfg, err := config.Load(shared, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := stack.NewBuilder(stack.Options{})
	defer b.Close()
	st, err := b.Build(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.CommitReplay()
	req := httptest.NewRequest(http.MethodPost, "/webhooks/github", strings.NewReader(body))
	req.Header.Set("X-Hub-Signature-256", githubSig(ghSecret, body))
	req.Header.Set("X-GitHub-Delivery", "first")
	rec := httptest.NewRecorder()
	st.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("the gate's request: %d %s", rec.Code, rec.Body)
	}
	out, err := check(shared, "/webhooks/github")
	if !errors.Is(err, ErrWebhookRefused) || !strings.Contains(out, "✗ the route's one bucket is past it now: the gate answers 429 rate_limited, however well signed; its next request is accepted in") ||
		!strings.Contains(out, "decision REFUSED: 429 rate_limited") {
		t.Fatalf("a spent bucket: %v\n%s", err, out)
	}
	if testing.Verbose() {
		t.Logf("output:\n%s", out)
	}
}
