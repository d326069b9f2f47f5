package gate

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/signature/redistest"
	"github.com/tokengate/tokengate/verifier/verifiertest"
)

// signedReceiver records what reached the receiver; status is what it
// answers.
type signedReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []string
	status atomic.Int32
}

func newSignedReceiver(t *testing.T) *signedReceiver {
	r := &signedReceiver{}
	r.status.Store(http.StatusOK)
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.bodies = append(r.bodies, string(b))
		r.mu.Unlock()
		w.WriteHeader(int(r.status.Load()))
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *signedReceiver) received() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bodies...)
}

func hmacHex(secret, msg string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

func githubHeaders(secret, delivery, body string) http.Header {
	return http.Header{"X-Hub-Signature-256": {"sha256=" + hmacHex(secret, body)}, "X-Github-Delivery": {delivery}}
}

func stripeHeaders(secret string, at time.Time, body string) http.Header {
	ts := strconv.FormatInt(at.Unix(), 10)
	return http.Header{"Stripe-Signature": {"t=" + ts + ",v1=" + hmacHex(secret, ts+"."+body)}}
}

func standardHeaders(secret []byte, id string, at time.Time, body string) http.Header {
	ts := strconv.FormatInt(at.Unix(), 10)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(id + "." + ts + "." + body))
	return http.Header{
		"Webhook-Id": {id}, "Webhook-Timestamp": {ts},
		"Webhook-Signature": {"v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))},
	}
}

// answer is one response, read whole.
type answer struct {
	status     int
	retryAfter string
	Error      string `json:"error"`
	Desc       string `json:"error_description"`
	// Result is "duplicate" for a copy of a delivered message (200).
	Result string `json:"result"`
	// DeliveryID is a queued message's X-Tokengate-Delivery-Id (202).
	DeliveryID string `json:"delivery_id"`
}

func post(t *testing.T, url string, h http.Header, body string) answer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	_ = json.Unmarshal(b, &a)
	return a
}

const signedRoutes = `
  - name: github
    path: /hooks/github
    signature: { scheme: github, secrets: ["${GH_OLD}", "${GH_NEW}"], max_body_size: 4KiB }
  - name: stripe
    path: /hooks/stripe
    signature: { scheme: stripe, secrets: ["${STRIPE_SECRET}"] }
  - name: standard
    path: /hooks/standard
    signature: { scheme: standard-webhooks, secrets: ["${SW_SECRET}"] }
  - name: either
    path: /hooks/either
    auth: any
    require: { scopes: ["webhooks:write"] }
    signature: { scheme: github, secrets: ["${GH_NEW}"] }
  - name: both
    path: /hooks/both
    auth: all
    require: { scopes: ["webhooks:write"] }
    signature: { scheme: github, secrets: ["${GH_NEW}"] }
`

func signedEnv(t *testing.T) {
	t.Setenv("GH_OLD", "old-github-secret")
	t.Setenv("GH_NEW", "new-github-secret")
	t.Setenv("STRIPE_SECRET", "whsec_stripe")
	t.Setenv("SW_SECRET", "whsec_"+base64.StdEncoding.EncodeToString([]byte("standard-secret")))
}

func signedGate(t *testing.T, idp *verifiertest.IdP, upstream, extra string) string {
	t.Helper()
	return "http://" + signedServer(t, idp, upstream, extra).pubLn.Addr().String()
}

func signedServer(t *testing.T, idp *verifiertest.IdP, upstream, extra string) *Gate {
	t.Helper()
	return startYAML(t, fmt.Sprintf(`
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream: %s
issuers: [{ name: idp, issuer: %s, audiences: [https://hooks.example.com] }]
routes:%s%s`, upstream, idp.Issuer(), signedRoutes, extra))
}

// TestSignedWebhooksThroughTheGate: each scheme end to end — verified
// bodies reach the receiver byte for byte, everything else gets its
// sender-safe reason and never reaches it; a replay is 409; a message the
// receiver did not take (500) may be retried.
func TestSignedWebhooksThroughTheGate(t *testing.T) {
	signedEnv(t)
	idp := verifiertest.New()
	defer idp.Close()
	recv := newSignedReceiver(t)
	gate := signedGate(t, idp, recv.URL, "")
	now := time.Now()
	body := `{"action":"opened","number":1}`
	sw := []byte("standard-secret")
	token := idp.Mint(idp.Claims("https://hooks.example.com", "webhooks:write"))
	bearer := http.Header{"Authorization": {"Bearer " + token}}
	merge := func(a, b http.Header) http.Header {
		out := a.Clone()
		for k, v := range b {
			out[k] = v
		}
		return out
	}
	tests := []struct {
		name    string
		path    string
		header  http.Header
		body    string
		status  int
		reason  string
		reaches bool
	}{
		{"github, new secret", "/hooks/github", githubHeaders("new-github-secret", "d-1", body), body, 200, "", true},
		{"github, old secret (rotation)", "/hooks/github", githubHeaders("old-github-secret", "d-2", body+" "), body + " ", 200, "", true},
		{"github, same delivery again", "/hooks/github", githubHeaders("new-github-secret", "d-1", body), body, 200, "duplicate", false},
		{"github, replay under a new delivery id", "/hooks/github", githubHeaders("new-github-secret", "d-99", body), body, 200, "duplicate", false},
		{"github, wrong secret", "/hooks/github", githubHeaders("guess", "d-3", body), body, 401, "signature mismatch", false},
		{"github, body changed", "/hooks/github", githubHeaders("new-github-secret", "d-4", body), body + "x", 401, "signature mismatch", false},
		{"github, unsigned", "/hooks/github", http.Header{}, body, 401, "signature missing", false},
		{"github, too large", "/hooks/github", githubHeaders("new-github-secret", "d-5", strings.Repeat("a", 5000)), strings.Repeat("a", 5000), 413, "", false},
		{"stripe", "/hooks/stripe", stripeHeaders("whsec_stripe", now, body), body, 200, "", true},
		{"stripe, old timestamp", "/hooks/stripe", stripeHeaders("whsec_stripe", now.Add(-6*time.Minute), body), body, 401, "timestamp outside tolerance", false},
		{"stripe, replay", "/hooks/stripe", stripeHeaders("whsec_stripe", now, body), body, 200, "duplicate", false},
		{"standard webhooks", "/hooks/standard", standardHeaders(sw, "msg_1", now, body), body, 200, "", true},
		{"standard webhooks, future timestamp", "/hooks/standard", standardHeaders(sw, "msg_2", now.Add(6*time.Minute), body), body, 401, "timestamp outside tolerance", false},
		{"standard webhooks, retry re-signed", "/hooks/standard", standardHeaders(sw, "msg_1", now.Add(time.Second), body), body, 200, "duplicate", false},
		{"any: bearer only", "/hooks/either", bearer, body, 200, "", true},
		{"any: signature only", "/hooks/either", githubHeaders("new-github-secret", "d-6", body+"6"), body + "6", 200, "", true},
		{"any: a bad signature is judged, not skipped", "/hooks/either", merge(bearer, githubHeaders("guess", "d-7", body)), body, 401, "signature mismatch", false},
		{"all: bearer only", "/hooks/both", bearer, body, 401, "signature missing", false},
		{"all: signature only", "/hooks/both", githubHeaders("new-github-secret", "d-8", body+"8"), body + "8", 401, "a bearer token is required", false},
		{"all: both", "/hooks/both", merge(bearer, githubHeaders("new-github-secret", "d-9", body+"9")), body + "9", 200, "", true},
	}
	for _, tc := range tests {
		before := len(recv.received())
		a := post(t, gate+tc.path, tc.header, tc.body)
		said := a.Desc
		if a.Result != "" {
			said = a.Result
		}
		if a.status != tc.status || (tc.reason != "" && said != tc.reason) {
			t.Errorf("%s: %d %q, want %d %q", tc.name, a.status, said, tc.status, tc.reason)
		}
		got := recv.received()
		switch {
		case tc.reaches && (len(got) != before+1 || got[len(got)-1] != tc.body):
			t.Errorf("%s: the receiver did not get the body as sent", tc.name)
		case !tc.reaches && len(got) != before:
			t.Errorf("%s: a refused request reached the receiver", tc.name)
		}
	}

	// Not delivered → not remembered: the sender's retry passes.
	recv.status.Store(http.StatusInternalServerError)
	h := githubHeaders("new-github-secret", "d-10", body+"10")
	if a := post(t, gate+"/hooks/github", h, body+"10"); a.status != 500 {
		t.Fatalf("receiver failing: %d", a.status)
	}
	recv.status.Store(http.StatusOK)
	if a := post(t, gate+"/hooks/github", h, body+"10"); a.status != 200 {
		t.Fatalf("the retry of an undelivered message: %d %q, want 200", a.status, a.Desc)
	}
	if a := post(t, gate+"/hooks/github", h, body+"10"); a.status != 200 || a.Result != "duplicate" {
		t.Fatalf("once delivered, the same message again: %d %q, want 200 duplicate", a.status, a.Result)
	}
	if n := len(recv.received()); n != 9 {
		t.Fatalf("the receiver got %d messages, want 9 (7 delivered, 1 answered 500 and its retry)", n)
	}
}

// TestReplayAcrossReplicasWithRedis: two tokengate instances share a real
// redis-server; a message accepted by one is refused by the other; with
// Redis stopped both answer 503 with Retry-After and forward nothing;
// restarted, they recover without a restart of tokengate.
func TestReplayAcrossReplicasWithRedis(t *testing.T) {
	srv := redistest.Start(t)
	signedEnv(t)
	idp := verifiertest.New()
	defer idp.Close()
	recv := newSignedReceiver(t)
	store := fmt.Sprintf("\nsignatures: { replay_store: %q, store_timeout: 300ms }\n", srv.URL())
	a := signedGate(t, idp, recv.URL, store)
	b := signedGate(t, idp, recv.URL, store)
	body := `{"zen":"Keep it logically awesome."}`
	h := githubHeaders("new-github-secret", "delivery-1", body)
	if r := post(t, a+"/hooks/github", h, body); r.status != 200 {
		t.Fatalf("replica A: %d %q", r.status, r.Desc)
	}
	if r := post(t, b+"/hooks/github", h, body); r.status != 200 || r.Result != "duplicate" {
		t.Fatalf("replica B, same message: %d %q, want 200 duplicate", r.status, r.Result)
	}
	sw := []byte("standard-secret")
	first := standardHeaders(sw, "msg_shared", time.Now(), body)
	if r := post(t, b+"/hooks/standard", first, body); r.status != 200 {
		t.Fatalf("replica B, standard webhook: %d %q", r.status, r.Desc)
	}
	if r := post(t, a+"/hooks/standard", standardHeaders(sw, "msg_shared", time.Now().Add(time.Second), body), body); r.status != 200 || r.Result != "duplicate" {
		t.Fatalf("replica A, same webhook-id re-signed: %d %q, want 200 duplicate", r.status, r.Result)
	}

	srv.Stop()
	n := len(recv.received())
	for _, gate := range []string{a, b} {
		h := githubHeaders("new-github-secret", "delivery-2", body+"2")
		r := post(t, gate+"/hooks/github", h, body+"2")
		if r.status != 503 || r.retryAfter == "" || r.Desc != "replay store unavailable; retry later" {
			t.Fatalf("redis down: %d Retry-After %q %q, want 503 with Retry-After", r.status, r.retryAfter, r.Desc)
		}
	}
	if len(recv.received()) != n {
		t.Fatal("with the replay store down, a message reached the receiver")
	}
	srv.Start()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := post(t, a+"/hooks/github", githubHeaders("new-github-secret", "delivery-2", body+"2"), body+"2")
		if r.status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis back, replica A still answers %d %q", r.status, r.Desc)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := post(t, b+"/hooks/github", githubHeaders("new-github-secret", "delivery-2", body+"2"), body+"2"); r.status != 200 || r.Result != "duplicate" {
		t.Fatalf("after the restart, replica B: %d %q, want 200 duplicate", r.status, r.Result)
	}
	if got := recv.received(); !bytes.Equal([]byte(got[len(got)-1]), []byte(body+"2")) {
		t.Fatal("the receiver did not get the message after recovery")
	}
}

// moreSignedRoutes: Shopify, and two Standard Webhooks endpoints with
// their own secrets that one sender fans a message out to.
const moreSignedRoutes = `
  - name: shopify
    path: /hooks/shopify
    signature: { scheme: shopify, secrets: ["${SHOPIFY_SECRET}"] }
  - name: fan-a
    path: /hooks/fan-a
    signature: { scheme: standard-webhooks, secrets: ["${FAN_A_SECRET}"] }
  - name: fan-b
    path: /hooks/fan-b
    signature: { scheme: standard-webhooks, secrets: ["${FAN_B_SECRET}"] }
`

func moreSignedEnv(t *testing.T) {
	t.Setenv("SHOPIFY_SECRET", "shopify-secret")
	t.Setenv("FAN_A_SECRET", "whsec_"+base64.StdEncoding.EncodeToString([]byte("fan-a-secret")))
	t.Setenv("FAN_B_SECRET", "whsec_"+base64.StdEncoding.EncodeToString([]byte("fan-b-secret")))
}

// duplicateStatus is the answer to a message already delivered.
const duplicateStatus = http.StatusOK

// TestReSpelledSignatureIsNotForwardedTwice: a captured message resent
// with its signature spelled otherwise (hex in upper or mixed case, a
// fresh unsigned delivery id, the matching v1 among junk ones) is the
// same message: the receiver gets it once.
func TestReSpelledSignatureIsNotForwardedTwice(t *testing.T) {
	signedEnv(t)
	moreSignedEnv(t)
	idp := verifiertest.New()
	defer idp.Close()
	recv := newSignedReceiver(t)
	gate := signedGate(t, idp, recv.URL, moreSignedRoutes)
	body := `{"action":"opened","number":7}`
	mixed := func(s string) string { // every other hex letter upper-cased
		b := []byte(s)
		for i := range b {
			if i%2 == 0 && b[i] >= 'a' && b[i] <= 'f' {
				b[i] -= 'a' - 'A'
			}
		}
		return string(b)
	}
	gh := hmacHex("new-github-secret", body)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	st := hmacHex("whsec_stripe", ts+"."+body)
	shop := hmac.New(sha256.New, []byte("shopify-secret"))
	shop.Write([]byte(body))
	shopSig := shop.Sum(nil)
	tests := []struct {
		name     string
		path     string
		original http.Header
		variants []http.Header
	}{
		{"github", "/hooks/github",
			http.Header{"X-Hub-Signature-256": {"sha256=" + gh}, "X-Github-Delivery": {"d-1"}},
			[]http.Header{
				{"X-Hub-Signature-256": {"sha256=" + strings.ToUpper(gh)}, "X-Github-Delivery": {"d-2"}},
				{"X-Hub-Signature-256": {"sha256=" + mixed(gh)}, "X-Github-Delivery": {"d-3"}},
				{"X-Hub-Signature-256": {"sha256=" + gh}},
			}},
		{"stripe", "/hooks/stripe",
			http.Header{"Stripe-Signature": {"t=" + ts + ",v1=" + st}},
			[]http.Header{
				{"Stripe-Signature": {"t=" + ts + ",v1=" + strings.ToUpper(st)}},
				{"Stripe-Signature": {"t=" + ts + ",v1=" + mixed(st)}},
				{"Stripe-Signature": {"t=" + ts + ",v1=00,v1=" + st + ",v0=11"}},
			}},
		{"shopify", "/hooks/shopify",
			http.Header{"X-Shopify-Hmac-Sha256": {base64.StdEncoding.EncodeToString(shopSig)}, "X-Shopify-Webhook-Id": {"w-1"}},
			[]http.Header{
				{"X-Shopify-Hmac-Sha256": {base64.StdEncoding.EncodeToString(shopSig)}, "X-Shopify-Webhook-Id": {"w-2"}},
			}},
	}
	for _, tc := range tests {
		before := len(recv.received())
		if a := post(t, gate+tc.path, tc.original, body); a.status != http.StatusOK {
			t.Fatalf("%s: the original: %d %q", tc.name, a.status, a.Desc)
		}
		for i, h := range tc.variants {
			if a := post(t, gate+tc.path, h, body); a.status != duplicateStatus {
				t.Errorf("%s: variant %d: %d %q, want %d", tc.name, i, a.status, a.Desc, duplicateStatus)
			}
		}
		if n := len(recv.received()) - before; n != 1 {
			t.Errorf("%s: the receiver got the message %d times, want once", tc.name, n)
		}
	}
}

// TestOneMessageFannedOutToTwoRoutesReachesBoth: a sender that sends one
// message (one webhook-id) to two endpoints with their own secrets gets
// it delivered on each; on each route a second copy is a duplicate.
func TestOneMessageFannedOutToTwoRoutesReachesBoth(t *testing.T) {
	signedEnv(t)
	moreSignedEnv(t)
	idp := verifiertest.New()
	defer idp.Close()
	recv := newSignedReceiver(t)
	gate := signedGate(t, idp, recv.URL, moreSignedRoutes)
	body := `{"type":"invoice.paid"}`
	now := time.Now()
	for _, r := range []struct{ path, secret string }{{"/hooks/fan-a", "fan-a-secret"}, {"/hooks/fan-b", "fan-b-secret"}} {
		h := standardHeaders([]byte(r.secret), "msg_fanned", now, body)
		if a := post(t, gate+r.path, h, body); a.status != http.StatusOK {
			t.Errorf("%s: %d %q, want 200", r.path, a.status, a.Desc)
		}
		if a := post(t, gate+r.path, h, body); a.status != duplicateStatus {
			t.Errorf("%s, again: %d %q, want %d", r.path, a.status, a.Desc, duplicateStatus)
		}
	}
	if n := len(recv.received()); n != 2 {
		t.Fatalf("the receiver got %d messages, want one per route", n)
	}
}

// madeUpStandard are Standard Webhooks headers that parse (a fresh
// timestamp, a signature of the right length) but were not signed with
// the secret: the gate must read the body to refuse them.
func madeUpStandard() string {
	return "Webhook-Id: msg_slow\r\nWebhook-Timestamp: " + strconv.FormatInt(time.Now().Unix(), 10) +
		"\r\nWebhook-Signature: v1," + base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\r\n"
}

// slowBody opens a connection that announces a signed body of length
// (chunked when length < 0), waits until the gate starts reading it (the
// 100 Continue it asked for) and sends part of it; the body is never
// finished. It returns the reader of the gate's answer; the connection is
// closed at the test's end.
func slowBody(t *testing.T, addr, path string, length int, part []byte) *bufio.Reader {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	framing := "Content-Length: " + strconv.Itoa(length)
	if length < 0 {
		framing = "Transfer-Encoding: chunked"
		part = append([]byte(fmt.Sprintf("%x\r\n", len(part))), append(part, "\r\n"...)...)
	}
	head := "POST " + path + " HTTP/1.1\r\nHost: hooks.example.com\r\n" + framing +
		"\r\nExpect: 100-continue\r\n" + madeUpStandard() + "\r\n"
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
		t.Fatalf("waiting for the gate to read the body: %q %v", line, err)
	}
	if _, err := br.ReadString('\n'); err != nil { // the blank line after 100 Continue
		t.Fatal(err)
	}
	// A write error is not fatal: the gate may refuse the body before it
	// is all sent, and its answer is still there to read.
	_, _ = c.Write(part)
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	return br
}

// TestBodyMemoryIsChargedForBytesRead: senders that announce large signed
// bodies (by Content-Length or chunked) and send a byte hold (almost)
// nothing of signatures.body_memory, so every signed route still serves
// others; bytes actually read are charged, and a body that no longer fits
// gets 503 with Retry-After.
func TestBodyMemoryIsChargedForBytesRead(t *testing.T) {
	signedEnv(t)
	idp := verifiertest.New()
	defer idp.Close()
	recv := newSignedReceiver(t)
	s := startYAML(t, fmt.Sprintf(`
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream: %s
body_read_timeout: 60s
signatures: { body_memory: 2MiB }
issuers: [{ name: idp, issuer: %s, audiences: [https://hooks.example.com] }]
routes:%s`, recv.URL, idp.Issuer(), signedRoutes))
	addr := s.pubLn.Addr().String()
	gate := "http://" + addr
	const mib = 1 << 20
	slowBody(t, addr, "/hooks/standard", mib, []byte("{"))
	slowBody(t, addr, "/hooks/standard", -1, []byte("{"))
	body := `{"zen":"Approachable is better than simple."}`
	if a := post(t, gate+"/hooks/github", githubHeaders("new-github-secret", "d-1", body), body); a.status != http.StatusOK {
		t.Fatalf("with 2 senders announcing 1 MiB each (of a 2 MiB budget) and sending 1 byte: %d %q, want 200", a.status, a.Desc)
	}

	// Two senders send 900 KiB each: each needs a 1 MiB buffer, the two
	// do not fit, and one of them is told to retry later.
	answers := make(chan string, 2)
	for range 2 {
		br := slowBody(t, addr, "/hooks/standard", mib, bytes.Repeat([]byte("a"), 900<<10))
		go func() {
			line, _ := br.ReadString('\n')
			if strings.HasPrefix(line, "HTTP/1.1 503 ") {
				for {
					h, err := br.ReadString('\n')
					if err != nil || h == "\r\n" {
						break
					}
					if strings.HasPrefix(h, "Retry-After: ") {
						line += " with Retry-After"
					}
				}
			}
			answers <- line
		}()
	}
	select {
	case line := <-answers:
		if !strings.HasPrefix(line, "HTTP/1.1 503 ") || !strings.Contains(line, "with Retry-After") {
			t.Fatalf("two 900 KiB bodies in a 2 MiB budget: %q, want 503 with Retry-After", line)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("waited 20s for the gate to refuse one of two 900 KiB bodies")
	}
}

// TestDuplicatesAnswerAsSendersExpect: a copy of a message the receiver
// took is answered 200 "duplicate" and not forwarded (a sender treats any
// other answer as a failure, retries, and may disable the hook); a copy
// of one still being delivered is 409 with Retry-After; a message the
// receiver did not take is released, and its retry delivered. Both
// answers are counted by decision and result.
func TestDuplicatesAnswerAsSendersExpect(t *testing.T) {
	signedEnv(t)
	idp := verifiertest.New()
	defer idp.Close()
	arrived, proceed := make(chan struct{}, 1), make(chan struct{})
	var mu sync.Mutex
	var got []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		mu.Lock()
		got = append(got, string(b))
		mu.Unlock()
		switch string(b) {
		case "slow":
			arrived <- struct{}{}
			select {
			case <-proceed:
			case <-time.After(20 * time.Second):
			}
		case "refused":
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer recv.Close()
	delivered := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	s := signedServer(t, idp, recv.URL, "")
	gate := "http://" + s.pubLn.Addr().String()
	sw := []byte("standard-secret")
	now := time.Now()

	first := make(chan answer, 1)
	go func() { first <- post(t, gate+"/hooks/standard", standardHeaders(sw, "msg_slow", now, "slow"), "slow") }()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("waited 10s for the message to reach the receiver")
	}
	a := post(t, gate+"/hooks/standard", standardHeaders(sw, "msg_slow", now.Add(time.Second), "slow"), "slow")
	if a.status != http.StatusConflict || a.retryAfter == "" || a.Error != "message_in_flight" {
		t.Errorf("a copy while the first is in flight: %d %q Retry-After %q, want 409 message_in_flight with Retry-After", a.status, a.Error, a.retryAfter)
	}
	close(proceed)
	select {
	case a := <-first:
		if a.status != http.StatusOK {
			t.Fatalf("the first delivery: %d", a.status)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waited 10s for the first delivery's answer")
	}
	for i := range 2 {
		a := post(t, gate+"/hooks/standard", standardHeaders(sw, "msg_slow", now.Add(time.Duration(i+2)*time.Second), "slow"), "slow")
		if a.status != http.StatusOK || a.Result != "duplicate" || a.retryAfter != "" {
			t.Errorf("copy %d once delivered: %d %q, want 200 duplicate", i, a.status, a.Result)
		}
	}
	if n := delivered(); n != 1 {
		t.Fatalf("the receiver got the message %d times, want once", n)
	}

	h := standardHeaders(sw, "msg_refused", now, "refused")
	if a := post(t, gate+"/hooks/standard", h, "refused"); a.status != http.StatusServiceUnavailable {
		t.Fatalf("the receiver refusing: %d", a.status)
	}
	if a := post(t, gate+"/hooks/standard", h, "refused"); a.status != http.StatusServiceUnavailable {
		t.Fatalf("the retry of a message the receiver did not take: %d, want it delivered (the receiver's 503)", a.status)
	}
	if n := delivered(); n != 3 {
		t.Fatalf("the receiver got %d messages, want 3", n)
	}

	m := get(t, "http://"+s.adminLn.Addr().String()+"/metrics")
	for _, want := range []string{
		`tokengate_requests_total{code="200",decision="duplicate",route="standard"} 2`,
		`tokengate_requests_total{code="409",decision="replayed",route="standard"} 1`,
		`tokengate_signature_verifications_total{result="duplicate_message",route="standard"} 2`,
		`tokengate_signature_verifications_total{result="message_in_flight",route="standard"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestReplayMemoryIsNeverFlushed: the in-memory store holds
// replay_memory_entries messages per route and forgets none before its
// window ends: spellings of one message take no room, a route that has
// filled its share gets 503 with Retry-After for new messages (its
// sender retries later), and a message delivered before is still a
// duplicate, on that route and on others.
func TestReplayMemoryIsNeverFlushed(t *testing.T) {
	signedEnv(t)
	idp := verifiertest.New()
	defer idp.Close()
	recv := newSignedReceiver(t)
	gate := signedGate(t, idp, recv.URL, "\nsignatures: { replay_memory_entries: 3 }\n")
	body := `{"ref":"refs/heads/main"}`
	gh := hmacHex("new-github-secret", body)
	if a := post(t, gate+"/hooks/github", http.Header{"X-Hub-Signature-256": {"sha256=" + gh}}, body); a.status != http.StatusOK {
		t.Fatalf("the first GitHub delivery: %d %q", a.status, a.Desc)
	}
	for i := range 20 { // 20 spellings of its hex: one message, one entry
		b := []byte(gh)
		for j := range b {
			if i>>(j%5)&1 == 1 && b[j] >= 'a' {
				b[j] -= 'a' - 'A'
			}
		}
		h := http.Header{"X-Hub-Signature-256": {"sha256=" + string(b)}, "X-Github-Delivery": {fmt.Sprint("v-", i)}}
		if a := post(t, gate+"/hooks/github", h, body); a.status != http.StatusOK || a.Result != "duplicate" {
			t.Fatalf("spelling %d: %d %q, want 200 duplicate", i, a.status, a.Result)
		}
	}
	signedAt := time.Now() // one t for every copy: a copy is the same signed content
	stripe := func(i int) answer {
		b := fmt.Sprintf(`{"id":"evt_%d"}`, i)
		return post(t, gate+"/hooks/stripe", stripeHeaders("whsec_stripe", signedAt, b), b)
	}
	for i := range 3 {
		if a := stripe(i); a.status != http.StatusOK {
			t.Fatalf("stripe message %d: %d %q", i, a.status, a.Desc)
		}
	}
	if a := stripe(3); a.status != http.StatusServiceUnavailable || a.retryAfter == "" {
		t.Fatalf("a 4th Stripe message within the window: %d %q Retry-After %q, want 503 with Retry-After", a.status, a.Desc, a.retryAfter)
	}
	if a := stripe(0); a.status != http.StatusOK || a.Result != "duplicate" {
		t.Fatalf("the first Stripe message again, its route full: %d %q, want 200 duplicate", a.status, a.Result)
	}
	if a := post(t, gate+"/hooks/github", githubHeaders("new-github-secret", "d-x", body), body); a.status != http.StatusOK || a.Result != "duplicate" {
		t.Fatalf("the GitHub message again: %d %q, want 200 duplicate", a.status, a.Result)
	}
	other := body + " "
	if a := post(t, gate+"/hooks/github", githubHeaders("new-github-secret", "d-y", other), other); a.status != http.StatusOK || a.Result != "" {
		t.Fatalf("a new GitHub message while Stripe's share is full: %d %q, want it delivered", a.status, a.Result)
	}
	if n := len(recv.received()); n != 5 {
		t.Fatalf("the receiver got %d messages, want 5", n)
	}
}

// TestRedisStallNeverMakesANewMessageAReplay: Redis runs the claim but
// its reply arrives after store_timeout (a busy or blipping Redis, held
// back by a proxy). Briefly: go-redis retries the claim, finds the claim
// it made itself, and the message is delivered. For longer: the sender
// gets 503, the claim whose outcome the gate could not know is released,
// and the sender's retry is delivered. Each message reaches the receiver
// exactly once; a further copy is a duplicate.
func TestRedisStallNeverMakesANewMessageAReplay(t *testing.T) {
	srv := redistest.Start(t)
	stall := redistest.NewStall(t, srv.Addr())
	signedEnv(t)
	idp := verifiertest.New()
	defer idp.Close()
	recv := newSignedReceiver(t)
	gate := signedGate(t, idp, recv.URL, fmt.Sprintf("\nsignatures: { replay_store: %q, store_timeout: 500ms }\n", stall.URL()))
	count := func(body string) int {
		n := 0
		for _, b := range recv.received() {
			if b == body {
				n++
			}
		}
		return n
	}
	send := func(body string) answer {
		return post(t, gate+"/hooks/github", githubHeaders("new-github-secret", "d", body), body)
	}
	// Warm up: every script loaded (claim, take; claim, release).
	if a := send("warm-1"); a.status != http.StatusOK {
		t.Fatalf("warm-up: %d %q", a.status, a.Desc)
	}
	recv.status.Store(http.StatusInternalServerError)
	send("warm-2")
	recv.status.Store(http.StatusOK)

	// A blip: the claim's reply comes 750ms late, after the 500ms timeout.
	stall.HoldNext(750 * time.Millisecond)
	if a := send("blip"); a.status != http.StatusOK || a.Result != "" {
		t.Errorf("a new message during a blip: %d %q %q, want it delivered", a.status, a.Desc, a.Result)
	}

	// A stall: no reply until it ends; the sender is told to retry.
	stall.Hold()
	a := send("stall")
	stall.Resume()
	if a.status != http.StatusServiceUnavailable || a.retryAfter == "" {
		t.Errorf("a new message while Redis stalls: %d %q, want 503 with Retry-After", a.status, a.Desc)
	}
	// The sender retries as told (Retry-After) until it is answered; the
	// claim the gate could not know the outcome of must not be taken for
	// a delivery: the answer is the receiver's, not "duplicate".
	deadline := time.Now().Add(10 * time.Second)
	for {
		a := send("stall")
		if a.status == http.StatusOK {
			if a.Result != "" {
				t.Errorf("the sender's retry after the stall: %q, want it delivered", a.Result)
			}
			break
		}
		if a.retryAfter == "" || time.Now().After(deadline) {
			t.Fatalf("the sender's retry after the stall: %d %q Retry-After %q, want it delivered within 10s", a.status, a.Desc, a.retryAfter)
		}
		time.Sleep(100 * time.Millisecond)
	}

	for _, body := range []string{"blip", "stall"} {
		if a := send(body); a.status != http.StatusOK || a.Result != "duplicate" {
			t.Errorf("%s again: %d %q, want 200 duplicate", body, a.status, a.Result)
		}
		if n := count(body); n != 1 {
			t.Errorf("%s reached the receiver %d times, want exactly once", body, n)
		}
	}
}

// budgetRoutes: signed routes whose bodies are at most 64 KiB, for a gate
// whose signatures.body_memory is 128 KiB: one client address may hold
// max(128 KiB/16, 64 KiB) = 64 KiB of it.
const budgetRoutes = `
  - name: capped
    path: /hooks/capped
    signature: { scheme: github, secrets: ["${GH_NEW}"], max_body_size: 64KiB }
  - name: capped-stripe
    path: /hooks/capped-stripe
    signature: { scheme: stripe, secrets: ["${STRIPE_SECRET}"], max_body_size: 64KiB }
`

// openSigned connects from the local address from (another loopback
// address is another client) and sends a POST's head that announces a
// body of length and asks for 100 Continue; it returns the connection and
// the reader of the gate's answers. The connection is closed at the
// test's end.
func openSigned(t *testing.T, from, addr, path string, length int, header string) (net.Conn, *bufio.Reader) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if errors.Is(err, syscall.EADDRNOTAVAIL) && os.Getenv("CI") == "" {
		t.Skipf("connecting from %s: %v (Linux routes all of 127/8 to loopback; CI runs this test)", from, err)
	}
	if err != nil {
		t.Fatalf("connecting from %s: %v", from, err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: hooks.example.com\r\nContent-Length: %d\r\nExpect: 100-continue\r\n%s\r\n", path, length, header)
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}

// readAnswer reads one response (a 100 Continue included) and its JSON.
func readAnswer(br *bufio.Reader) (answer, error) {
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	if resp.StatusCode != http.StatusContinue {
		b, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(b, &a)
	}
	return a, nil
}

// TestNoOneClientCanTakeTheSignedBodyBudget: signatures.body_memory cannot
// be taken by senders without the secret. A signature header that cannot
// be right (wrong length, a stale timestamp, none at all) is refused 401
// before any of the body is read; a request whose body has not started
// holds nothing, however many wait; and one client address holds at most
// its share (here 64 KiB of 128 KiB): past it that address gets 503 with
// Retry-After, while a correctly signed message from another address is
// delivered.
func TestNoOneClientCanTakeTheSignedBodyBudget(t *testing.T) {
	signedEnv(t)
	idp := verifiertest.New()
	defer idp.Close()
	recv := newSignedReceiver(t)
	s := startYAML(t, fmt.Sprintf(`
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream: %s
body_read_timeout: 60s
signatures: { body_memory: 128KiB }
issuers: [{ name: idp, issuer: %s, audiences: [https://hooks.example.com] }]
routes:%s`, recv.URL, idp.Issuer(), budgetRoutes))
	addr := s.pubLn.Addr().String()
	n := 0
	legit := func(what string) {
		t.Helper()
		n++
		body := fmt.Sprintf(`{"n":%d,"pad":"%s"}`, n, strings.Repeat("x", 50<<10))
		if a := post(t, "http://"+addr+"/hooks/capped", githubHeaders("new-github-secret", "d", body), body); a.status != http.StatusOK {
			t.Fatalf("%s: a correctly signed 50 KiB message from 127.0.0.1: %d %q, want 200", what, a.status, a.Desc)
		}
	}
	madeUpGitHub := "X-Hub-Signature-256: sha256=" + strings.Repeat("0", 64) + "\r\n"

	// Headers that cannot be right: 401 at once, no 100 Continue, the
	// body never waited for (it would take body_read_timeout, 60s).
	stale := strconv.FormatInt(time.Now().Add(-10*time.Minute).Unix(), 10)
	for _, tc := range []struct{ name, path, header, reason string }{
		{"a signature too short", "/hooks/capped", "X-Hub-Signature-256: sha256=000\r\n", "signature malformed"},
		{"a signature not hex", "/hooks/capped", "X-Hub-Signature-256: sha256=" + strings.Repeat("z", 64) + "\r\n", "signature malformed"},
		{"no signature", "/hooks/capped", "", "signature missing"},
		{"a stale timestamp", "/hooks/capped-stripe", "Stripe-Signature: t=" + stale + ",v1=" + strings.Repeat("0", 64) + "\r\n", "timestamp outside tolerance"},
	} {
		c, br := openSigned(t, "127.0.0.1", addr, tc.path, 60_000, tc.header)
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		a, err := readAnswer(br)
		if err != nil || a.status != http.StatusUnauthorized || a.Desc != tc.reason {
			t.Errorf("%s, no body sent: %d %q %v, want 401 %q at once", tc.name, a.status, a.Desc, err, tc.reason)
		}
		c.Close()
	}

	// 32 senders on two addresses whose bodies have not started: nothing
	// held (charged 4 KiB each, they would fill both shares and the
	// budget).
	for _, from := range []string{"127.0.0.2", "127.0.0.3"} {
		for range 16 {
			c, br := openSigned(t, from, addr, "/hooks/capped", 60_000, madeUpGitHub)
			if a, err := readAnswer(br); err != nil || a.status != http.StatusContinue {
				t.Fatalf("a sender from %s waiting for the gate to read its body: %d %v, want 100 Continue", from, a.status, err)
			}
			defer c.Close()
		}
	}
	legit("with 32 senders whose bodies have not started")

	// 12 senders from 127.0.0.2 send 30,000 bytes of 60,000 each: each
	// needs a 32 KiB buffer; two fit in the address's share, the others
	// are refused. The budget keeps room for other addresses.
	answers := make(chan answer, 12)
	for range 12 {
		c, br := openSigned(t, "127.0.0.2", addr, "/hooks/capped", 60_000, madeUpGitHub)
		if a, err := readAnswer(br); err != nil || a.status != http.StatusContinue {
			t.Fatalf("waiting for 100 Continue: %d %v", a.status, err)
		}
		if _, err := c.Write(bytes.Repeat([]byte("a"), 30_000)); err != nil {
			t.Fatal(err)
		}
		go func() {
			a, err := readAnswer(br)
			if err != nil {
				a.Desc = err.Error()
			}
			answers <- a
		}()
	}
	// At least 8 are refused whatever the budget's rule: then the 128
	// KiB hold all they will.
	for i := range 8 {
		select {
		case a := <-answers:
			if a.status != http.StatusServiceUnavailable || a.retryAfter == "" {
				t.Fatalf("a sender past its share: %d %q Retry-After %q, want 503 with Retry-After", a.status, a.Desc, a.retryAfter)
			}
			if i == 0 {
				t.Logf("a sender past its share: %d %q", a.status, a.Desc)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("waited 20s for the gate to refuse 8 of 12 senders of 30,000 bytes from one address (%d refused)", i)
		}
	}
	legit("with one address holding all it may")
}

// heldReceiver holds each request until its body is released (or the
// gate cancels it, or 20s pass), then answers 200; it signals arrivals and
// cancellations and counts copies by body.
type heldReceiver struct {
	*httptest.Server
	arrived, cancelled chan string
	mu                 sync.Mutex
	copies             map[string]int
	releases           map[string]chan struct{}
}

func newHeldReceiver(t *testing.T) *heldReceiver {
	r := &heldReceiver{arrived: make(chan string, 16), cancelled: make(chan string, 16), copies: map[string]int{}, releases: map[string]chan struct{}{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.copies[string(b)]++
		r.mu.Unlock()
		r.arrived <- string(b)
		select {
		case <-r.releaseOf(string(b)):
		case <-req.Context().Done():
			r.cancelled <- string(b)
		case <-time.After(20 * time.Second):
		}
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *heldReceiver) releaseOf(body string) chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.releases[body]
	if c == nil {
		c = make(chan struct{})
		r.releases[body] = c
	}
	return c
}

func (r *heldReceiver) count(body string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.copies[body]
}

func (r *heldReceiver) await(t *testing.T, body string) {
	t.Helper()
	select {
	case got := <-r.arrived:
		if got != body {
			t.Fatalf("the receiver got %q, want %q", got, body)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("waited 10s for %q to reach the receiver", body)
	}
}

// TestSenderGoneOrSlowReceiverIsNotDeliveredTwice: once the receiver has
// a signed message, its sender going away does not cancel the delivery:
// the receiver's 200 still settles the message, and the sender's retry is
// a duplicate. When the receiver's answer is lost (it answers after
// response_timeout: the sender gets 504), the message is not released:
// a copy gets 409 with Retry-After until its lease ends, and the receiver
// gets it once.
func TestSenderGoneOrSlowReceiverIsNotDeliveredTwice(t *testing.T) {
	signedEnv(t)
	idp := verifiertest.New()
	defer idp.Close()
	recv := newHeldReceiver(t)
	s := startYAML(t, fmt.Sprintf(`
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream: { url: %s, response_timeout: 5s }
issuers: [{ name: idp, issuer: %s, audiences: [https://hooks.example.com] }]
routes:%s`, recv.URL, idp.Issuer(), signedRoutes))
	addr := s.pubLn.Addr().String()
	gate := "http://" + addr

	// The sender goes away while the receiver holds the message.
	body := `{"action":"gone"}`
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, gate+"/hooks/github", strings.NewReader(body))
	req.Header = githubHeaders("new-github-secret", "d-gone", body)
	if err := req.Write(c); err != nil {
		t.Fatal(err)
	}
	recv.await(t, body)
	c.Close()
	select { // the gate must not cancel the delivery; give it 1s to
	case <-recv.cancelled:
	case <-time.After(time.Second):
	}
	close(recv.releaseOf(body))
	deadline := time.Now().Add(10 * time.Second)
	for {
		a := post(t, gate+"/hooks/github", githubHeaders("new-github-secret", "d-retry", body), body)
		if a.status == http.StatusConflict && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond) // still being settled
			continue
		}
		if a.status != http.StatusOK || a.Result != "duplicate" {
			t.Fatalf("the sender's retry after it went away and the receiver took the message: %d %q %q, want 200 duplicate", a.status, a.Desc, a.Result)
		}
		break
	}
	if n := recv.count(body); n != 1 {
		t.Fatalf("the receiver got the message %d times, want once", n)
	}

	// The receiver answers after response_timeout (5s): 504, and the
	// message stays in flight.
	body = `{"action":"slow"}`
	defer close(recv.releaseOf(body))
	h := stripeHeaders("whsec_stripe", time.Now(), body)
	done := make(chan answer, 1)
	go func() { done <- post(t, gate+"/hooks/stripe", h, body) }()
	recv.await(t, body)
	select {
	case a := <-done:
		if a.status != http.StatusGatewayTimeout {
			t.Fatalf("a receiver slower than response_timeout: %d %q, want 504", a.status, a.Desc)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("waited 15s for the gate's 504")
	}
	if a := post(t, gate+"/hooks/stripe", h, body); a.status != http.StatusConflict || a.retryAfter == "" {
		t.Fatalf("the sender's retry after a lost answer: %d %q %q, want 409 with Retry-After (the receiver may have it)", a.status, a.Desc, a.Result)
	}
	if n := recv.count(body); n != 1 {
		t.Fatalf("the receiver got the message %d times, want once", n)
	}

	// A receiver that cannot be reached never got the message: it is
	// released, and the sender's retry is tried again (502, not 409).
	down := "http://" + signedServer(t, idp, "http://"+freeAddr(t), "").pubLn.Addr().String()
	for i := range 2 {
		if a := post(t, down+"/hooks/stripe", h, body); a.status != http.StatusBadGateway {
			t.Fatalf("attempt %d with the receiver down: %d %q, want 502", i, a.status, a.Desc)
		}
	}
}

// TestRedisPauseWhileRecordingADeliveryIsRetried: Redis pauses writes
// (CLIENT PAUSE 1500 WRITE) while the gate records a delivered message;
// the take times out (store_timeout 500ms) and the sender gets the
// receiver's 200. The take is retried in the background until it lands:
// a copy is a duplicate on this replica at once, and on another replica
// (which asks Redis) once the pause is over, never forwarded again.
func TestRedisPauseWhileRecordingADeliveryIsRetried(t *testing.T) {
	srv := redistest.Start(t)
	signedEnv(t)
	idp := verifiertest.New()
	defer idp.Close()
	recv := newHeldReceiver(t)
	store := fmt.Sprintf("\nsignatures: { replay_store: %q, store_timeout: 500ms }\n", srv.URL())
	a := signedGate(t, idp, recv.URL, store)
	b := signedGate(t, idp, recv.URL, store)
	warm := `{"warm":1}` // loads the claim and take scripts
	close(recv.releaseOf(warm))
	if r := post(t, a+"/hooks/github", githubHeaders("new-github-secret", "d", warm), warm); r.status != http.StatusOK {
		t.Fatalf("warm-up: %d %q", r.status, r.Desc)
	}
	recv.await(t, warm)

	body := `{"action":"paused"}`
	h := githubHeaders("new-github-secret", "d-1", body)
	first := make(chan answer, 1)
	go func() { first <- post(t, a+"/hooks/github", h, body) }()
	recv.await(t, body)
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rc.Close()
	if err := rc.Do(context.Background(), "CLIENT", "PAUSE", 1500, "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	close(recv.releaseOf(body))
	select {
	case r := <-first:
		if r.status != http.StatusOK || r.Result != "" {
			t.Fatalf("the delivery during the pause: %d %q %q, want the receiver's 200", r.status, r.Desc, r.Result)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("waited 15s for the delivery's answer")
	}
	if r := post(t, a+"/hooks/github", h, body); r.status != http.StatusOK || r.Result != "duplicate" {
		t.Errorf("a copy to the same replica: %d %q %q, want 200 duplicate", r.status, r.Desc, r.Result)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := post(t, b+"/hooks/github", h, body)
		if r.status == http.StatusOK && r.Result == "duplicate" {
			break
		}
		if r.status == http.StatusOK || time.Now().After(deadline) {
			t.Fatalf("a copy to another replica: %d %q %q, want 200 duplicate within 10s", r.status, r.Desc, r.Result)
		}
		time.Sleep(100 * time.Millisecond) // 409 (in flight) or 503 (paused) until the take lands
	}
	if n := recv.count(body); n != 1 {
		t.Fatalf("the receiver got the message %d times, want once", n)
	}
}

// readyz is the admin /readyz answer.
func readyz(t *testing.T, s *Gate) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + s.adminLn.Addr().String() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestReadyzSaysWhenTheReplayStoreIsUnreachable: with a wrong Redis
// password every signed request would get 503, so /readyz is 503 and
// names the replay store (never the password); with the right one it is
// ready; when Redis stops, /readyz fails within a few seconds.
func TestReadyzSaysWhenTheReplayStoreIsUnreachable(t *testing.T) {
	srv := redistest.Start(t)
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	if err := rc.ConfigSet(context.Background(), "requirepass", "right-pass").Err(); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	signedEnv(t)
	idp := verifiertest.New()
	defer idp.Close()
	recv := newSignedReceiver(t)
	t.Setenv("WRONG_PASS", "wrong-pass")
	t.Setenv("RIGHT_PASS", "right-pass")
	store := func(env string) string {
		return fmt.Sprintf("\nsignatures: { replay_store: \"redis://:${%s}@%s/0\", store_timeout: 500ms }\n", env, srv.Addr())
	}
	wrong := signedServer(t, idp, recv.URL, store("WRONG_PASS"))
	right := signedServer(t, idp, recv.URL, store("RIGHT_PASS"))

	eventually(t, "the gate with the right password ready", func() bool { code, _ := readyz(t, right); return code == http.StatusOK })
	code, body := readyz(t, wrong)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "replay store") || strings.Contains(body, "wrong-pass") {
		t.Fatalf("a wrong Redis password: /readyz %d %q, want 503 naming the replay store, without the password", code, body)
	}
	t.Logf("/readyz: %s", strings.TrimSpace(body))
	gate := "http://" + wrong.pubLn.Addr().String()
	msg := `{"ready":false}`
	if a := post(t, gate+"/hooks/github", githubHeaders("new-github-secret", "d", msg), msg); a.status != http.StatusServiceUnavailable {
		t.Fatalf("a signed request through it: %d %q, want 503", a.status, a.Desc)
	}

	srv.Stop()
	eventually(t, "/readyz to fail once Redis stopped", func() bool {
		code, body := readyz(t, right)
		return code == http.StatusServiceUnavailable && strings.Contains(body, "replay store")
	})
}

// TestAFailedReloadKeepsTheReplayStore: a reload that builds a new replay
// store and then fails (here: a broken certificate) leaves the running
// store in place, so a later good reload of the old settings still knows
// every message delivered before.
func TestAFailedReloadKeepsTheReplayStore(t *testing.T) {
	signedEnv(t)
	idp := verifiertest.New()
	defer idp.Close()
	recv := newSignedReceiver(t)
	base := fmt.Sprintf("listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nupstream: %s\nissuers: [{ name: idp, issuer: %s, audiences: [https://hooks.example.com] }]\nroutes:%s",
		recv.URL, idp.Issuer(), signedRoutes)
	s := startYAML(t, base+"\nsignatures: { replay_memory_entries: 100 }\n")
	gate := "http://" + s.pubLn.Addr().String()
	body := `{"ref":"refs/heads/main"}`
	if a := post(t, gate+"/hooks/github", githubHeaders("new-github-secret", "d-1", body), body); a.status != 200 || a.Result != "" {
		t.Fatalf("the first delivery: %d %q", a.status, a.Result)
	}
	reload := func(y string) error {
		if err := os.WriteFile(s.path, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		return s.Reload(t.Context(), "test")
	}
	broken := filepath.Join(t.TempDir(), "broken.pem")
	if err := os.WriteFile(broken, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := reload(base + "\nsignatures: { replay_memory_entries: 200 }\ntls: { cert_file: " + broken + ", key_file: " + broken + " }\n"); err == nil {
		t.Fatal("a reload with a broken certificate succeeded")
	}
	if err := reload(base + "\nsignatures: { replay_memory_entries: 100 }\nrealm: again\n"); err != nil {
		t.Fatal(err)
	}
	if a := post(t, gate+"/hooks/github", githubHeaders("new-github-secret", "d-2", body), body); a.status != 200 || a.Result != "duplicate" {
		t.Fatalf("the same message after a failed and a good reload: %d %q, want 200 duplicate", a.status, a.Result)
	}
	if n := len(recv.received()); n != 1 {
		t.Fatalf("the receiver got the message %d times, want once", n)
	}
}
