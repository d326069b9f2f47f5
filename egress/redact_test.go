package egress

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tokengate/tokengate/egress/egresstest"
)

// secretLeaks lists the forms of secret found in text.
func secretLeaks(text, id, secret string) []string {
	var found []string
	for _, f := range []string{secret, strings.ToUpper(secret), url.QueryEscape(secret), hex.EncodeToString([]byte(secret)),
		base64.StdEncoding.EncodeToString([]byte(secret)), basicOf(id, secret), basicOf(url.QueryEscape(id), url.QueryEscape(secret))} {
		if strings.Contains(text, f) {
			found = append(found, f)
		}
	}
	// A part of it is a leak too (a secret cut short before it was
	// looked for): any 12 bytes of it in a row, in any case.
	lower := strings.ToLower(text)
	for i := 0; i+12 <= len(secret); i++ {
		if part := strings.ToLower(secret[i : i+12]); strings.Contains(lower, part) {
			return append(found, "part "+secret[i:i+12])
		}
	}
	return found
}

// jsonString encodes s as Go does by default: & < > as \u0026 \u003c
// \u003e, which a redactor looking for the secret as is would miss.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestEchoedSecretRedacted: a token endpoint that echoes the client secret
// in any field of its answer — token_type, scope, error_uri, a member no
// RFC names, error_description in another spelling — never gets it into
// the app's answer, /readyz (Ready), a log line or the error `tokengate
// check` prints (Fetch's). The requests go through the real handler to a
// real endpoint.
func TestEchoedSecretRedacted(t *testing.T) {
	long := "Zq8" + strings.Repeat("k3Y9-vR2_pL7", 5) + "&end" // longer than a token_type is shown
	ok := func(extra string) egresstest.Answer {
		return egresstest.Answer{Status: 200, Body: `{"access_token":"tok_abc","token_type":"Bearer","expires_in":3600` + extra + `}`}
	}
	for _, tc := range []struct {
		name   string
		secret string
		answer egresstest.Answer
		want   int
	}{
		{"token_type", testSecret, egresstest.Answer{Status: 200, Body: `{"access_token":"tok_abc","token_type":` + jsonString(testSecret) + `}`}, 503},
		{"token_type, a long secret", long, egresstest.Answer{Status: 200, Body: `{"access_token":"tok_abc","token_type":` + jsonString(long) + `}`}, 503},
		{"token_type, form answer", testSecret, egresstest.Answer{Status: 200, Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
			Body: "access_token=tok_abc&token_type=" + url.QueryEscape(testSecret)}, 503},
		{"scope of a token", testSecret, ok(`,"scope":` + jsonString("read "+testSecret)), 200},
		{"error_uri", testSecret, egresstest.Answer{Status: 401, Body: `{"error":"invalid_client","error_uri":` + jsonString("https://vendor.example/e?s="+testSecret) + `}`}, 503},
		{"unknown member of a bad_response", testSecret, egresstest.Answer{Status: 400, Body: `{"message":"bad credentials","received":{"client_secret":` + jsonString(testSecret) + `}}`}, 503},
		{"unknown member of a 5xx answer", long, egresstest.Answer{Status: 502, Body: `{"upstream":` + jsonString("secret="+long) + `}`}, 503},
		{"plain-text bad_response", testSecret, egresstest.Answer{Status: 403, Header: http.Header{"Content-Type": {"text/plain"}}, Body: "denied for " + testSecret}, 503},
		{"error_description, upper case", testSecret, egresstest.Answer{Status: 401, Body: `{"error":"invalid_client","error_description":` + jsonString(strings.ToUpper(testSecret)) + `}`}, 503},
		{"error_description, hex", testSecret, egresstest.Answer{Status: 401, Body: `{"error":"invalid_client","error_description":"` + hex.EncodeToString([]byte(testSecret)) + `"}`}, 503},
		{"error_description, base64", testSecret, egresstest.Answer{Status: 401, Body: `{"error":"invalid_client","error_description":"` + base64.StdEncoding.EncodeToString([]byte(testSecret)) + `"}`}, 503},
		{"error code", testSecret, egresstest.Answer{Status: 400, Body: `{"error":` + jsonString(testSecret) + `}`}, 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := egresstest.NewTokenEndpoint(testID, tc.secret, time.Hour)
			defer e.Close()
			e.Script(func(int) egresstest.Answer { return tc.answer })
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"ok":true}`)) }))
			defer up.Close()
			core, logs := observer.New(zapcore.DebugLevel)
			log := zap.New(core)
			topts := TokenOptions{URL: e.URL, ClientID: testID, ClientSecret: tc.secret}
			s := NewSource(SourceOptions{Name: "vendor", Token: topts, Logger: log, WaitTimeout: 500 * time.Millisecond,
				MinBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
			defer s.Close()
			h := newTestHandler(t, up.URL, s, func(o *HandlerOptions) { o.Logger = log })
			rr := httptest.NewRecorder()
			h.ServeHTTP(rr, httptest.NewRequest(http.MethodPost, "http://localhost/v1/hooks", strings.NewReader("{}")))
			if rr.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", rr.Code, tc.want, rr.Body)
			}
			var all strings.Builder
			all.WriteString(rr.Body.String())
			if err := s.Ready(); err != nil {
				all.WriteString(err.Error())
			}
			if _, err := Fetch(context.Background(), topts); err != nil {
				all.WriteString(err.Error())
			}
			for _, l := range logs.All() {
				all.WriteString(l.Message)
				for k, v := range l.ContextMap() {
					all.WriteString(k + toString(v))
				}
			}
			if leaks := secretLeaks(all.String(), testID, tc.secret); len(leaks) > 0 {
				t.Fatalf("the client secret leaked as %q into the answer, /readyz, the logs or check:\n%s", leaks, all.String())
			}
			if !strings.Contains(all.String(), redacted) {
				t.Errorf("nothing was shown redacted (was the field shown at all?):\n%s", all.String())
			}
		})
	}
}

// TestRedactorForms: every form of the secret is hidden, however it is
// cased, and a form inside a longer one leaves nothing behind.
func TestRedactorForms(t *testing.T) {
	r := TokenOptions{ClientID: testID, ClientSecret: testSecret}.redactor("rt-123456")
	for _, in := range []string{
		testSecret, strings.ToUpper(testSecret), url.QueryEscape(testSecret), url.PathEscape(testSecret),
		strings.ToUpper(hex.EncodeToString([]byte(testSecret))), base64.RawURLEncoding.EncodeToString([]byte(testSecret)),
		basicOf(testID, testSecret), basicOf(url.QueryEscape(testID), url.QueryEscape(testSecret)),
		strings.Trim(jsonString(testSecret), `"`), "rt-123456",
	} {
		got := r.text("x "+in+" y", 1000)
		if got != "x "+redacted+" y" {
			t.Errorf("%q → %q", in, got)
		}
	}
	if got := r.text("\xff\xfe"+strings.ToUpper(testSecret)+"\x00", 1000); strings.Contains(strings.ToLower(got), strings.ToLower(testSecret)) {
		t.Errorf("with invalid UTF-8 around it: %q", got)
	}
}
