package egress

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/egress/egresstest"
)

const (
	testID     = "deployteq-client"
	testSecret = "s3cr3t+/=with:odd&chars"
)

// basicOf is the credentials part of a Basic Authorization header.
func basicOf(id, secret string) string {
	return base64.StdEncoding.EncodeToString([]byte(id + ":" + secret))
}

// TestFetchShapes sends each request shape to a real endpoint and checks
// where the credentials and parameters arrived.
func TestFetchShapes(t *testing.T) {
	e := egresstest.NewTokenEndpoint(testID, testSecret, time.Hour)
	defer e.Close()
	for _, tc := range []struct {
		style     AuthStyle
		shape     string
		ctypePref string
		basic     bool
	}{
		{AuthBasic, "basic", "application/x-www-form-urlencoded", true},
		{AuthForm, "form", "application/x-www-form-urlencoded", false},
		{AuthJSON, "json", "application/json", false},
		{AuthMultipart, "multipart", "multipart/form-data; boundary=", true},
	} {
		t.Run(string(tc.style), func(t *testing.T) {
			before := len(e.Requests())
			tok, err := Fetch(context.Background(), TokenOptions{
				URL: e.URL, ClientID: testID, ClientSecret: testSecret, Auth: tc.style,
				Scopes: []string{"*:webhooks/**"}, Params: map[string]string{"audience": "https://api.example"},
			})
			if err != nil {
				t.Fatal(err)
			}
			reqs := e.Requests()
			if len(reqs) != before+1 {
				t.Fatalf("token requests: %d, want 1", len(reqs)-before)
			}
			r := reqs[len(reqs)-1]
			if r.Shape != tc.shape || !strings.HasPrefix(r.ContentType, tc.ctypePref) {
				t.Errorf("shape %q content type %q, want %q %q", r.Shape, r.ContentType, tc.shape, tc.ctypePref)
			}
			if r.ClientID != testID || r.Secret != testSecret || r.GrantType != "client_credentials" {
				t.Errorf("credentials or grant not received: %+v", r)
			}
			if r.Scope != "*:webhooks/**" || r.Params["audience"] != "https://api.example" {
				t.Errorf("scope %q params %v", r.Scope, r.Params)
			}
			if _, inBody := r.Params["client_secret"]; inBody {
				t.Errorf("client_secret sent twice")
			}
			if tok.Scope != "*:webhooks/**" || e.Check(tok.Value, time.Now()) != nil {
				t.Errorf("token %+v not the one issued", tok.Scope)
			}
			if got := tok.Lifetime(); got < time.Hour-time.Second || got > time.Hour {
				t.Errorf("lifetime %v, want 1h", got)
			}
		})
	}
}

// TestFetchAnswers parses what vendors really send, and what they send
// when things go wrong.
func TestFetchAnswers(t *testing.T) {
	e := egresstest.NewTokenEndpoint(testID, testSecret, 90*time.Second)
	defer e.Close()
	type want struct {
		lifetime   time.Duration // 0: an error is expected
		code       string
		permanent  bool
		retryAfter time.Duration
		inMessage  string
	}
	for _, tc := range []struct {
		name   string
		answer egresstest.Answer
		client *http.Client
		want   want
	}{
		{name: "expires_in as a string (Deployteq)", answer: egresstest.Answer{ExpiresIn: `"3600"`, TokenType: "bearer"}, want: want{lifetime: time.Hour}},
		{name: "expires_in as a number", answer: egresstest.Answer{ExpiresIn: "86400"}, want: want{lifetime: 24 * time.Hour}},
		{name: "lower-case bearer", answer: egresstest.Answer{TokenType: "bearer"}, want: want{lifetime: 90 * time.Second}},
		{name: "no expires_in, JWT exp (MyParcel)", answer: egresstest.Answer{ExpiresIn: "-", JWT: true}, want: want{lifetime: 90 * time.Second}},
		{name: "JWT exp earlier than expires_in", answer: egresstest.Answer{ExpiresIn: "7200", JWT: true}, want: want{lifetime: 90 * time.Second}},
		{name: "no expires_in, opaque token", answer: egresstest.Answer{ExpiresIn: "-"}, want: want{lifetime: 42 * time.Minute}},
		{name: "DPoP token type", answer: egresstest.Answer{TokenType: "DPoP"}, want: want{code: "unsupported_token_type", permanent: true, inMessage: `"DPoP" is not Bearer`}},
		{name: "MAC token type", answer: egresstest.Answer{TokenType: "mac"}, want: want{code: "unsupported_token_type", permanent: true, inMessage: `"mac"`}},
		{name: "expires_in zero seconds left", answer: egresstest.Answer{ExpiresIn: "-1"}, want: want{code: "lifetime_too_short"}},
		{name: "429 with Retry-After", answer: egresstest.Answer{Status: 429, Header: http.Header{"Retry-After": {"7"}}, Body: `{"error":"slow_down"}`}, want: want{code: "rate_limited", retryAfter: 7 * time.Second}},
		{name: "503 without a body", answer: egresstest.Answer{Status: 503}, want: want{code: "server_error"}},
		{name: "500 with an HTML page", answer: egresstest.Answer{Status: 500, Body: "<html>oops</html>", Header: http.Header{"Content-Type": {"text/html"}}}, want: want{code: "server_error"}},
		{name: "invalid_client", answer: egresstest.Answer{Status: 401, Body: `{"error":"invalid_client","error_description":"unknown client"}`}, want: want{code: "invalid_client", permanent: true, inMessage: "unknown client"}},
		{name: "invalid_scope", answer: egresstest.Answer{Status: 400, Body: `{"error":"invalid_scope","error_description":"scope apps.webhook:execute not allowed"}`}, want: want{code: "invalid_scope", permanent: true, inMessage: "apps.webhook:execute"}},
		{name: "error echoing the secret", answer: egresstest.Answer{Status: 401, Body: `{"error":"invalid_client","error_description":"bad secret ` + testSecret + `"}`}, want: want{code: "invalid_client", permanent: true, inMessage: "[redacted]"}},
		{name: "error echoing the form-encoded secret", answer: egresstest.Answer{Status: 400, Body: `{"error":"invalid_request","error_description":"body was client_secret=` + url.QueryEscape(testSecret) + `"}`}, want: want{code: "invalid_request", permanent: true, inMessage: "[redacted]"}},
		{name: "error echoing the Basic credentials", answer: egresstest.Answer{Status: 401, Body: `{"error":"invalid_client","error_description":"Authorization: Basic ` + basicOf(url.QueryEscape(testID), url.QueryEscape(testSecret)) + `"}`}, want: want{code: "invalid_client", permanent: true, inMessage: "Basic [redacted]"}},
		{name: "error echoing raw Basic credentials", answer: egresstest.Answer{Status: 401, Body: `{"error":"invalid_client","error_description":"got ` + basicOf(testID, testSecret) + `"}`}, want: want{code: "invalid_client", permanent: true, inMessage: "got [redacted]"}},
		{name: "access_token with a space", answer: egresstest.Answer{Status: 200, Body: `{"access_token":"abc def","token_type":"Bearer","expires_in":60}`}, want: want{code: "bad_response", inMessage: "cannot carry"}},
		{name: "access_token with a line break", answer: egresstest.Answer{Status: 200, Body: `{"access_token":"abc\r\nX-Injected: 1","token_type":"Bearer","expires_in":60}`}, want: want{code: "bad_response", inMessage: "cannot carry"}},
		{name: "200 without access_token", answer: egresstest.Answer{Status: 200, Body: `{"token_type":"Bearer"}`}, want: want{code: "bad_response", inMessage: "access_token"}},
		{name: "redirect", answer: egresstest.Answer{Status: 307, Header: http.Header{"Location": {"https://elsewhere.example/token"}}}, want: want{code: "bad_response", inMessage: "redirected"}},
		{name: "slow answer", answer: egresstest.Answer{Delay: 2 * time.Second}, client: &http.Client{Timeout: 200 * time.Millisecond}, want: want{code: "timeout"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.Script(func(int) egresstest.Answer { return tc.answer })
			tok, err := Fetch(context.Background(), TokenOptions{URL: e.URL, ClientID: testID, ClientSecret: testSecret, DefaultLifetime: 42 * time.Minute, Client: tc.client})
			if tc.want.lifetime > 0 {
				if err != nil {
					t.Fatal(err)
				}
				if d := tok.Lifetime() - tc.want.lifetime; d < -2*time.Second || d > time.Second {
					t.Fatalf("lifetime %v, want %v", tok.Lifetime(), tc.want.lifetime)
				}
				return
			}
			var te *TokenError
			if !errors.As(err, &te) {
				t.Fatalf("err = %v, want a TokenError", err)
			}
			if te.Code != tc.want.code || te.Permanent() != tc.want.permanent || te.RetryAfter != tc.want.retryAfter {
				t.Errorf("code %q permanent %v retry-after %v; want %q %v %v", te.Code, te.Permanent(), te.RetryAfter, tc.want.code, tc.want.permanent, tc.want.retryAfter)
			}
			if !strings.Contains(err.Error(), tc.want.inMessage) {
				t.Errorf("message %q: want it to contain %q", err, tc.want.inMessage)
			}
			for _, leak := range []string{testSecret, url.QueryEscape(testSecret), basicOf(testID, testSecret), basicOf(url.QueryEscape(testID), url.QueryEscape(testSecret))} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("message %q holds the secret as %q", err, leak)
				}
			}
		})
	}
	e.Script(nil)
}

func TestFetchUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = Fetch(context.Background(), TokenOptions{URL: "http://" + addr + "/token", ClientID: testID, ClientSecret: testSecret})
	var te *TokenError
	if !errors.As(err, &te) || te.Code != "unreachable" || te.Permanent() {
		t.Fatalf("err = %v, want a transient unreachable TokenError", err)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"0", 0}, {"12", 12 * time.Second}, {"-5", 0}, {"soon", 0},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{"999999", maxRetryAfter},
	} {
		if got := retryAfter(tc.in, now); got != tc.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
