package signature

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// vector is a published (or independently computed) signed message.
type vector struct {
	name    string
	scheme  string
	secrets []string
	header  http.Header
	body    string
	at      time.Time // the message's timestamp (zero: the scheme signs none)
	// mutate lists header changes of one byte that must break the
	// signature (the id and the timestamp where the scheme signs them).
	mutate []string
}

// vectors: sources in the note and in README's signed-webhooks section.
var vectors = []vector{
	{
		// The Standard Webhooks reference test vector (standard-webhooks
		// libraries' tests; the same in Svix's).
		name: "standard-webhooks v1", scheme: StandardWebhooks,
		secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
		header: http.Header{
			"Webhook-Id":        {"msg_p5jXN8AQM9LWM0D4loKWxJek"},
			"Webhook-Timestamp": {"1614265330"},
			"Webhook-Signature": {"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="},
		},
		body: `{"test": 2432232314}`, at: time.Unix(1614265330, 0),
		mutate: []string{"Webhook-Id", "Webhook-Timestamp"},
	},
	{
		// Ed25519 over the same content, signed with OpenSSL 3.0
		// (openssl pkeyutl -sign -rawin), not with this code.
		name: "standard-webhooks v1a", scheme: StandardWebhooks,
		secrets: []string{"whpk_v7cXLG2ceX889ptkiM+DoxEcBUNPdv9Z/b85LiT5T5w="},
		header: http.Header{
			"Webhook-Id":        {"msg_p5jXN8AQM9LWM0D4loKWxJek"},
			"Webhook-Timestamp": {"1614265330"},
			"Webhook-Signature": {"v1a,Llyzn5JLBEpF+hpmqN2urQlFho69I6Rc41svVkDGzySv5P01MaAO0n40t2CSFKiNnTq0LjiKNn0mPtgXkiXICg=="},
		},
		body: `{"test": 2432232314}`, at: time.Unix(1614265330, 0),
		mutate: []string{"Webhook-Id", "Webhook-Timestamp"},
	},
	{
		// GitHub's documented example ("Validating webhook deliveries").
		name: "github", scheme: GitHub,
		secrets: []string{"It's a Secret to Everybody"},
		header: http.Header{
			"X-Hub-Signature-256": {"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"},
			"X-Github-Delivery":   {"72d3162e-cc78-11e3-81ab-4c9367dc0958"},
		},
		body: "Hello, World!",
	},
	{
		// Stripe publishes the format (t=…,v1=… over "t.body") but no
		// secret/payload/signature triple: computed with
		// openssl dgst -sha256 -hmac whsec_stripe_test_secret.
		name: "stripe", scheme: Stripe,
		secrets: []string{"whsec_stripe_test_secret"},
		header: http.Header{
			"Stripe-Signature": {"t=1492774577,v1=3d0873311bac04710bc9a6ea9f1b52578b545883e2af92f5c5a40d022bf94df7,v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39"},
		},
		body: `{"id":"evt_1","object":"event"}`, at: time.Unix(1492774577, 0),
		mutate: []string{"Stripe-Signature"},
	},
	{
		// Shopify publishes no vector either: computed with
		// openssl dgst -sha256 -hmac hush -binary | base64.
		name: "shopify", scheme: Shopify,
		secrets: []string{"hush"},
		header: http.Header{
			"X-Shopify-Hmac-Sha256": {"qBvrsZF7RfB1iS6BX6IHqJTp5L911P7intnPeTPsH0I="},
			"X-Shopify-Webhook-Id":  {"b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"},
		},
		body: `{"id":820982911946154508}`,
	},
}

func newAt(t *testing.T, v vector, at time.Time, store Store) *Verifier {
	t.Helper()
	ver, err := New(Options{Scheme: v.scheme, Secrets: v.secrets, Store: store, Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	return ver
}

func reason(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// TestVectors: each vector verifies; a one-byte change in the body, and in
// the id or timestamp where the scheme signs them, fails with "signature
// mismatch".
func TestVectors(t *testing.T) {
	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			at := v.at
			if at.IsZero() {
				at = time.Now()
			}
			ver := newAt(t, v, at, nil)
			if _, err := ver.Verify(context.Background(), v.header, []byte(v.body)); err != nil {
				t.Fatalf("the vector does not verify: %v", err)
			}
			body := []byte(v.body)
			body[len(body)/2] ^= 0x01
			if _, err := ver.Verify(context.Background(), v.header, body); reason(err) != ReasonMismatch || !errors.Is(err, ErrRefused) {
				t.Errorf("one byte of body changed: %v, want %q", err, ReasonMismatch)
			}
			for _, name := range v.mutate {
				h := v.header.Clone()
				val := []byte(h.Get(name))
				if name == "Stripe-Signature" {
					val[len("t=14927745")]++ // a digit of t
				} else {
					val[len(val)-1]++ // "…Jek" → "…Jel", "…330" → "…331"
				}
				h.Set(name, string(val))
				if _, err := ver.Verify(context.Background(), h, []byte(v.body)); reason(err) != ReasonMismatch {
					t.Errorf("one byte of %s changed: %v, want %q", name, err, ReasonMismatch)
				}
			}
		})
	}
}

func TestTimestampTolerance(t *testing.T) {
	for _, v := range vectors {
		if v.at.IsZero() {
			continue
		}
		for _, off := range []time.Duration{-DefaultTolerance - time.Second, DefaultTolerance + time.Second} {
			ver := newAt(t, v, v.at.Add(off), nil)
			if _, err := ver.Verify(context.Background(), v.header, []byte(v.body)); reason(err) != ReasonTimestamp {
				t.Errorf("%s at %v from its timestamp: %v, want %q", v.name, off, err, ReasonTimestamp)
			}
		}
		ver := newAt(t, v, v.at.Add(DefaultTolerance-time.Second), nil)
		if _, err := ver.Verify(context.Background(), v.header, []byte(v.body)); err != nil {
			t.Errorf("%s inside the tolerance: %v", v.name, err)
		}
	}
}

func TestMissingAndMalformed(t *testing.T) {
	tests := []struct {
		scheme string
		header http.Header
		want   string
	}{
		{GitHub, http.Header{}, ReasonMissing},
		{GitHub, http.Header{"X-Hub-Signature-256": {"sha1=00"}}, ReasonMalformed},
		{GitHub, http.Header{"X-Hub-Signature-256": {"sha256=zz"}}, ReasonMalformed},
		{Shopify, http.Header{"X-Shopify-Hmac-Sha256": {"!!"}}, ReasonMalformed},
		{Stripe, http.Header{"Stripe-Signature": {"v1=00"}}, ReasonMalformed},
		{Stripe, http.Header{"Stripe-Signature": {"t=1492774577,v0=00"}}, ReasonMissing},
		{StandardWebhooks, http.Header{"Webhook-Id": {"a"}, "Webhook-Signature": {"v1,AA=="}}, ReasonMissing},
		{StandardWebhooks, http.Header{"Webhook-Id": {"a"}, "Webhook-Timestamp": {"soon"}, "Webhook-Signature": {"v1,AA=="}}, ReasonMalformed},
	}
	for _, tc := range tests {
		secret := "s"
		if tc.scheme == StandardWebhooks {
			secret = "whsec_c2VjcmV0"
		}
		v, err := New(Options{Scheme: tc.scheme, Secrets: []string{secret}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(context.Background(), tc.header, []byte("{}")); reason(err) != tc.want {
			t.Errorf("%s %v: %v, want %q", tc.scheme, tc.header, err, tc.want)
		}
	}
}

func githubSign(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// TestRotation: during a rotation both the old and the new secret are
// accepted; a secret that is not configured is not. Standard Webhooks'
// list of signatures is searched for one that verifies.
func TestRotation(t *testing.T) {
	v, err := New(Options{Scheme: GitHub, Secrets: []string{"old-secret", "new-secret"}})
	if err != nil {
		t.Fatal(err)
	}
	for secret, want := range map[string]string{"old-secret": "", "new-secret": "", "other": ReasonMismatch} {
		h := http.Header{"X-Hub-Signature-256": {githubSign(secret, "{}")}}
		if _, err := v.Verify(context.Background(), h, []byte("{}")); reason(err) != want {
			t.Errorf("signed with %s: %v, want %q", secret, err, want)
		}
	}
	sw := vectors[0]
	h := sw.header.Clone()
	h.Set("Webhook-Signature", "v1,bm9wZQ== v2,abc "+sw.header.Get("Webhook-Signature"))
	rot := newAt(t, vector{scheme: StandardWebhooks, secrets: []string{"whsec_bmV3LXNlY3JldA==", sw.secrets[0]}}, sw.at, nil)
	if _, err := rot.Verify(context.Background(), h, []byte(sw.body)); err != nil {
		t.Errorf("old secret among two, its signature last in the list: %v", err)
	}
}

// TestReplayInMemory: a copy of a message in flight is ErrInFlight; once
// released (not delivered) it passes again; once taken (delivered) a copy
// is ErrDuplicate.
func TestReplayInMemory(t *testing.T) {
	ctx := context.Background()
	for _, v := range vectors {
		store := NewMemoryStore(MemoryOptions{Entries: 10})
		at := v.at
		if at.IsZero() {
			at = time.Now()
		}
		ver := newAt(t, v, at, store)
		r, err := ver.Verify(ctx, v.header, []byte(v.body))
		if err != nil {
			t.Fatalf("%s: first delivery: %v", v.name, err)
		}
		if _, err := ver.Verify(ctx, v.header, []byte(v.body)); !errors.Is(err, ErrInFlight) || reason(err) != ReasonInFlight {
			t.Errorf("%s: a copy while in flight: %v, want %q", v.name, err, ReasonInFlight)
		}
		if err := r.Settle(ctx, false); err != nil {
			t.Fatal(err)
		}
		r, err = ver.Verify(ctx, v.header, []byte(v.body))
		if err != nil {
			t.Fatalf("%s: after a release: %v", v.name, err)
		}
		if err := r.Settle(ctx, true); err != nil {
			t.Fatal(err)
		}
		if err := r.Settle(ctx, false); err != nil { // only the first counts
			t.Fatal(err)
		}
		if _, err := ver.Verify(ctx, v.header, []byte(v.body)); !errors.Is(err, ErrDuplicate) || reason(err) != ReasonDuplicate {
			t.Errorf("%s: a copy once delivered: %v, want %q", v.name, err, ReasonDuplicate)
		}
	}
	// GitHub's delivery id is not signed: a copy under a new id is the
	// same message.
	gh := vectors[2]
	store := NewMemoryStore(MemoryOptions{Entries: 10})
	if _, err := newAt(t, gh, time.Now(), store).Verify(ctx, gh.header, []byte(gh.body)); err != nil {
		t.Fatal(err)
	}
	h := gh.header.Clone()
	h.Set("X-Github-Delivery", "another-id")
	if _, err := newAt(t, gh, time.Now(), store).Verify(ctx, h, []byte(gh.body)); !errors.Is(err, ErrInFlight) {
		t.Errorf("GitHub copy with a fresh delivery id: %v, want it in flight", err)
	}
}

// TestMemoryStoreNeverForgetsEarly: a route holding its bound of live
// messages refuses a new one (ErrStoreFull) instead of dropping an old
// one; another route is not affected; expired messages make room; an
// in-flight claim ends with its lease, a taken one with its window.
func TestMemoryStoreNeverForgetsEarly(t *testing.T) {
	now := time.Unix(1000, 0)
	m := NewMemoryStore(MemoryOptions{Entries: 2, Now: func() time.Time { return now }})
	ctx := context.Background()
	tk := func(scope, key string) Ticket { return Ticket{Scope: scope, Key: key, Owner: "o-" + key} }
	claim := func(tt Ticket, lease time.Duration) State {
		t.Helper()
		s, err := m.Claim(ctx, tt, lease)
		if err != nil {
			t.Fatalf("claim %s: %v", tt.Key, err)
		}
		return s
	}
	a, b, c := tk("r1", "a"), tk("r1", "b"), tk("r1", "c")
	if s := claim(a, time.Second); s != Fresh {
		t.Fatalf("a: %v", s)
	}
	if s := claim(a, time.Second); s != Fresh {
		t.Fatalf("a, the same owner again (a retried command): %v, want Fresh", s)
	}
	if s := claim(Ticket{Scope: "r1", Key: "a", Owner: "other"}, time.Second); s != InFlight {
		t.Fatalf("a, another owner: %v, want InFlight", s)
	}
	_ = m.Take(ctx, a, time.Minute)
	if s := claim(Ticket{Scope: "r1", Key: "a", Owner: "other"}, time.Second); s != Taken {
		t.Fatalf("a taken: %v, want Taken", s)
	}
	claim(b, time.Second)
	if _, err := m.Claim(ctx, c, time.Second); !errors.Is(err, ErrStoreFull) {
		t.Fatalf("c with r1 full: %v, want ErrStoreFull", err)
	}
	if s := claim(tk("r2", "c"), time.Second); s != Fresh {
		t.Fatalf("another route while r1 is full: %v", s)
	}
	now = now.Add(2 * time.Second) // b's lease is over, a is kept
	if s := claim(c, time.Second); s != Fresh {
		t.Fatalf("c once b's lease ended: %v", s)
	}
	if s := claim(Ticket{Scope: "r1", Key: "a", Owner: "other"}, time.Second); s != Taken {
		t.Fatalf("a, inside its window: %v, want Taken", s)
	}
	_ = m.Release(ctx, Ticket{Scope: "r1", Key: "c", Owner: "not-c"})
	if s := claim(Ticket{Scope: "r1", Key: "c", Owner: "other"}, time.Second); s != InFlight {
		t.Fatalf("c released by a stranger: %v, want still InFlight", s)
	}
	_ = m.Release(ctx, a)
	if s := claim(Ticket{Scope: "r1", Key: "a", Owner: "other"}, time.Second); s != Taken {
		t.Fatalf("a, taken, then released: %v, want still Taken", s)
	}
	now = now.Add(time.Minute)
	if s := claim(Ticket{Scope: "r1", Key: "a", Owner: "other"}, time.Second); s != Fresh {
		t.Fatalf("a after its window: %v, want Fresh", s)
	}
	if n := m.Len(); n > 3 {
		t.Fatalf("%d entries held, want the expired ones dropped", n)
	}
}

func TestBadSecrets(t *testing.T) {
	for _, tc := range []struct{ scheme, secret string }{
		{StandardWebhooks, "whsec_!!!"},
		{StandardWebhooks, "whpk_AAAA"},
		{GitHub, ""},
		{"gitlab", "x"},
	} {
		if _, err := New(Options{Scheme: tc.scheme, Secrets: []string{tc.secret}}); err == nil {
			t.Errorf("%s %q accepted", tc.scheme, tc.secret)
		}
	}
}

// TestCheckHeadersBeforeTheBody: what the headers alone tell is judged
// without the body: each vector's headers pass; a signature of the wrong
// length or encoding, a missing one and a timestamp outside the tolerance
// are refused with the reason Verify would give.
func TestCheckHeadersBeforeTheBody(t *testing.T) {
	for _, v := range vectors {
		at := v.at
		if at.IsZero() {
			at = time.Now()
		}
		if err := newAt(t, v, at, nil).CheckHeaders(v.header); err != nil {
			t.Errorf("%s: %v", v.name, err)
		}
		if !v.at.IsZero() {
			if err := newAt(t, v, at.Add(DefaultTolerance+time.Second), nil).CheckHeaders(v.header); reason(err) != ReasonTimestamp {
				t.Errorf("%s, stale: %v, want %q", v.name, err, ReasonTimestamp)
			}
		}
	}
	now := strconv.FormatInt(time.Now().Unix(), 10)
	zeros := strings.Repeat("0", 64)
	tests := []struct {
		scheme string
		header http.Header
		want   string
	}{
		{GitHub, http.Header{"X-Hub-Signature-256": {"sha256=" + zeros}}, ""},
		{GitHub, http.Header{"X-Hub-Signature-256": {"sha256=" + zeros[:62]}}, ReasonMalformed},
		{GitHub, http.Header{"X-Hub-Signature-256": {"sha256=" + zeros + "00"}}, ReasonMalformed},
		{GitHub, http.Header{"X-Hub-Signature-256": {"sha1=" + zeros}}, ReasonMalformed},
		{Shopify, http.Header{"X-Shopify-Hmac-Sha256": {base64.StdEncoding.EncodeToString(make([]byte, 31))}}, ReasonMalformed},
		{Shopify, http.Header{"X-Shopify-Hmac-Sha256": {base64.RawStdEncoding.EncodeToString(make([]byte, 32))}}, ReasonMalformed},
		{Stripe, http.Header{"Stripe-Signature": {"t=" + now + ",v1=" + zeros}}, ""},
		{Stripe, http.Header{"Stripe-Signature": {"t=" + now + ",v1=00"}}, ReasonMalformed},
		{Stripe, http.Header{"Stripe-Signature": {"t=" + now}}, ReasonMissing},
		{Stripe, http.Header{"Stripe-Signature": {"v1=" + zeros}}, ReasonMalformed},
		{StandardWebhooks, http.Header{"Webhook-Id": {"a"}, "Webhook-Timestamp": {now}, "Webhook-Signature": {"v1," + base64.StdEncoding.EncodeToString(make([]byte, 32))}}, ""},
		{StandardWebhooks, http.Header{"Webhook-Id": {"a"}, "Webhook-Timestamp": {now}, "Webhook-Signature": {"v1,AA== v2," + base64.StdEncoding.EncodeToString(make([]byte, 32))}}, ReasonMalformed},
		{StandardWebhooks, http.Header{"Webhook-Id": {"a"}, "Webhook-Signature": {"v1,AA=="}}, ReasonMissing},
	}
	for _, tc := range tests {
		secret := "s"
		if tc.scheme == StandardWebhooks {
			secret = "whsec_c2VjcmV0"
		}
		v, err := New(Options{Scheme: tc.scheme, Secrets: []string{secret}})
		if err != nil {
			t.Fatal(err)
		}
		if err := v.CheckHeaders(tc.header); reason(err) != tc.want {
			t.Errorf("%s %v: %v, want %q", tc.scheme, tc.header, err, tc.want)
		}
	}
}

// TestSignedHeaderSentTwice: a request that sends a header its scheme
// reads twice is refused as malformed, even when the first one is a
// valid signature (the second, never verified, would be forwarded).
func TestSignedHeaderSentTwice(t *testing.T) {
	for _, v := range vectors {
		for _, name := range schemes[v.scheme].headers {
			if len(v.header[name]) == 0 {
				continue
			}
			for _, second := range []string{v.header[name][0], "x"} {
				t.Run(v.name+"/"+name+"/"+second, func(t *testing.T) {
					h := v.header.Clone()
					h[name] = append(h[name], second)
					ver := newAt(t, v, v.at, nil)
					if _, err := ver.Verify(context.Background(), h, []byte(v.body)); reason(err) != ReasonMalformed {
						t.Fatalf("Verify = %v, want %q", err, ReasonMalformed)
					}
					if err := ver.CheckHeaders(h); reason(err) != ReasonMalformed {
						t.Fatalf("CheckHeaders = %v, want %q", err, ReasonMalformed)
					}
				})
			}
			// An underscore spelling beside it is the header sent again:
			// CGI-style receivers read both as one variable.
			under := strings.ReplaceAll(name, "-", "_")
			last := strings.LastIndexByte(name, '-')
			for _, alias := range []string{under, http.CanonicalHeaderKey(under), strings.ToLower(under), name[:last] + "_" + name[last+1:]} {
				t.Run(v.name+"/"+alias, func(t *testing.T) {
					h := v.header.Clone()
					h[alias] = []string{"x"}
					ver := newAt(t, v, v.at, nil)
					if _, err := ver.Verify(context.Background(), h, []byte(v.body)); reason(err) != ReasonMalformed {
						t.Fatalf("Verify = %v, want %q", err, ReasonMalformed)
					}
					if err := ver.CheckHeaders(h); reason(err) != ReasonMalformed {
						t.Fatalf("CheckHeaders = %v, want %q", err, ReasonMalformed)
					}
				})
			}
		}
	}
	// Other underscore headers are no signature header's spelling.
	for _, v := range vectors {
		h := v.header.Clone()
		h["X_custom_header"] = []string{"x"}
		if _, err := newAt(t, v, v.at, nil).Verify(context.Background(), h, []byte(v.body)); err != nil {
			t.Errorf("%s with X_custom_header: %v, want verified", v.name, err)
		}
	}
}

// TestSvixHeadersBesideStandardOnes: Svix's libraries read svix-id,
// svix-timestamp and svix-signature before the webhook-* headers, so an
// svix-* header beside the verified one must hold its value (an outside
// attack had "svix-id: evil" stored and forwarded beside a verified
// webhook-id); alone, they are not read.
func TestSvixHeadersBesideStandardOnes(t *testing.T) {
	var v vector
	for _, c := range vectors {
		if c.scheme == StandardWebhooks && len(c.header["Webhook-Signature"]) == 1 {
			v = c
			break
		}
	}
	if v.scheme == "" {
		t.Fatal("no Standard Webhooks vector")
	}
	same := func(h http.Header) {
		for _, n := range []string{"Id", "Timestamp", "Signature"} {
			h["Svix-"+n] = slices.Clone(h["Webhook-"+n])
		}
	}
	for _, c := range []struct {
		name string
		edit func(h http.Header)
		want string // "" verified, else the reason
	}{
		{"svix-* equal to webhook-*", same, ""},
		{"svix-id differs", func(h http.Header) { same(h); h.Set("Svix-Id", "evil") }, ReasonMalformed},
		{"svix-timestamp differs", func(h http.Header) { same(h); h.Set("Svix-Timestamp", "1000000000") }, ReasonMalformed},
		{"svix-signature differs", func(h http.Header) { same(h); h.Set("Svix-Signature", "v1,AAAA") }, ReasonMalformed},
		{"svix-id alone beside webhook-*", func(h http.Header) { h.Set("Svix-Id", "evil") }, ReasonMalformed},
		{"svix-id twice", func(h http.Header) { same(h); h.Add("Svix-Id", h.Get("Webhook-Id")) }, ReasonMalformed},
		{"svix_id underscore", func(h http.Header) { h["Svix_id"] = []string{"evil"} }, ReasonMalformed},
		{"svix-* alone", func(h http.Header) {
			same(h)
			for _, n := range []string{"Id", "Timestamp", "Signature"} {
				h.Del("Webhook-" + n)
			}
		}, ReasonMissing},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := v.header.Clone()
			c.edit(h)
			_, err := newAt(t, v, v.at, nil).Verify(context.Background(), h, []byte(v.body))
			if c.want == "" && err != nil || c.want != "" && reason(err) != c.want {
				t.Fatalf("Verify = %v, want %q", err, c.want)
			}
		})
	}
}
