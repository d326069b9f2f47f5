package egress

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tokengate/tokengate/egress/egresstest"
)

// echoEndpoint is a real token endpoint that issues one access token,
// valid for 3s, to the first request (client credentials or refresh),
// and answers every later one 400 invalid_request with a description
// naming that token and the refresh token it was sent, as a vendor did;
// pad bytes before that text put the token where a description is cut.
func echoEndpoint(t *testing.T, pad int) (url string, issued string, count *atomic.Int64) {
	t.Helper()
	issued = "AT-ISSUED-LEAK-" + fmt.Sprint(time.Now().UnixNano())
	count = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		if count.Add(1) == 1 {
			_, _ = fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3}`, issued)
			return
		}
		w.WriteHeader(http.StatusBadRequest)
		_, _ = fmt.Fprintf(w, `{"error":"invalid_request","error_description":%q}`,
			strings.Repeat("x", pad)+" your previous access token "+issued+" cannot be renewed with "+r.PostForm.Get("refresh_token")+" yet")
	}))
	t.Cleanup(srv.Close)
	return srv.URL, issued, count
}

// TestEchoedAccessTokenRedacted: a token endpoint that echoes the access
// token it issued earlier in an error — while the token is still held
// (the background refresh) or after an upstream refused it (dropped) —
// never gets it onto the status (LastError), /readyz, a log line or the
// app's 503 body; with a refresh grant, the refresh token sent is hidden
// as well.
func TestEchoedAccessTokenRedacted(t *testing.T) {
	for _, tc := range []struct {
		name    string
		refresh bool // a refresh grant; else client credentials
		dropped bool // the upstream refuses the token; else the background refresh fails
		pad     int
	}{
		{"client credentials, dropped after a 401", false, true, 0},
		{"client credentials, token where the description is cut", false, true, 150},
		{"refresh grant, dropped after a 401", true, true, 0},
		{"refresh grant, background refresh while held", true, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tokenURL, issued, count := echoEndpoint(t, tc.pad)
			core, logs := observer.New(zapcore.DebugLevel)
			log := zap.New(core)
			o := SourceOptions{Name: "vendor", Logger: log, WaitTimeout: 5 * time.Second,
				MinBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
				Token: TokenOptions{URL: tokenURL, ClientID: testID, ClientSecret: testSecret}}
			rt := "RT-SENT-" + fmt.Sprint(time.Now().UnixNano())
			if tc.refresh {
				file := filepath.Join(t.TempDir(), "refresh-token")
				forgetRefreshFile(t, file)
				if err := os.WriteFile(file, []byte(rt), 0o600); err != nil {
					t.Fatal(err)
				}
				o.Grant = NewRefreshGrant(AuthCodeOptions{Name: "vendor", Token: o.Token, RefreshTokenFile: file})
			}
			s := NewSource(o)
			defer s.Close()
			upStatus := http.StatusOK
			if tc.dropped {
				upStatus = http.StatusUnauthorized
			}
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(upStatus) }))
			defer up.Close()
			h := newTestHandler(t, up.URL, s, func(o *HandlerOptions) { o.Logger = log })
			send := func() *httptest.ResponseRecorder {
				rr := httptest.NewRecorder()
				h.ServeHTTP(rr, httptest.NewRequest(http.MethodPost, "http://localhost/v1/hooks", strings.NewReader("{}")))
				return rr
			}

			var all strings.Builder
			if tc.dropped {
				rr := send() // token 1, upstream 401, token dropped, the new request fails
				if rr.Code != http.StatusServiceUnavailable {
					t.Fatalf("status %d, want 503: %s", rr.Code, rr.Body)
				}
				all.WriteString(rr.Body.String())
			} else {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				go s.Run(ctx)
				deadline := time.Now().Add(30 * time.Second)
				for s.Status().LastResult != "invalid_request" || s.Status().Held {
					if time.Now().After(deadline) {
						t.Fatalf("waited 30s for the refresh to fail and the token to expire: %+v", s.Status())
					}
					time.Sleep(20 * time.Millisecond)
				}
				rr := send()
				if rr.Code != http.StatusServiceUnavailable {
					t.Fatalf("status %d, want 503: %s", rr.Code, rr.Body)
				}
				all.WriteString(rr.Body.String())
			}
			if count.Load() < 2 {
				t.Fatalf("%d token requests, want at least 2", count.Load())
			}
			all.WriteString(s.Status().LastError)
			if err := s.Ready(); err != nil {
				all.WriteString(err.Error())
			}
			for _, l := range logs.All() {
				all.WriteString(l.Message)
				for k, v := range l.ContextMap() {
					all.WriteString(k + toString(v))
				}
			}
			text := all.String()
			if strings.Contains(text, issued) || strings.Contains(text, "AT-ISSUED-LEAK") {
				t.Fatalf("the access token leaked into the answer, the status, /readyz or the logs:\n%s", text)
			}
			if strings.Contains(text, rt) {
				t.Fatalf("the refresh token leaked:\n%s", text)
			}
			if !strings.Contains(text, "your previous access token "+redacted) {
				t.Errorf("the endpoint's description was not shown, redacted:\n%s", text)
			}
		})
	}
}

// TestTokenFieldsScrubbedFromAnswers: an error answer that carries tokens
// in its members (a 500 with an access_token, a nested refresh_token, a
// form-encoded or plain-text body) is shown with those values replaced,
// by Fetch (`tokengate check`), the status, the logs and the app's 503.
func TestTokenFieldsScrubbedFromAnswers(t *testing.T) {
	const leak = "ACCESSTOKEN-LEAK-s500"
	text := http.Header{"Content-Type": {"text/plain"}}
	for _, tc := range []struct {
		name   string
		answer egresstest.Answer
	}{
		{"5xx JSON access_token", egresstest.Answer{Status: 500, Body: `{"access_token":"` + leak + `","token_type":"Bearer"}`}},
		{"4xx JSON nested refresh_token", egresstest.Answer{Status: 400, Body: `{"message":"bad","received":{"Refresh_Token":"` + leak + `"}}`}},
		{"4xx JSON id_token in an array", egresstest.Answer{Status: 403, Body: `{"tokens":[{"id_token":"` + leak + `"}]}`}},
		{"5xx JSON code", egresstest.Answer{Status: 502, Body: `{"code":"` + leak + `","status":502}`}},
		{"5xx plain text, form-encoded", egresstest.Answer{Status: 500, Header: text, Body: "echo: grant_type=x&access_token=" + leak + "&scope=a"}},
		{"4xx plain text, prose", egresstest.Answer{Status: 400, Header: text, Body: "client_assertion: " + leak + " is malformed"}},
		{"error_description with a JSON member", egresstest.Answer{Status: 400,
			Body: `{"error":"invalid_request","error_description":"got {\"assertion\": \"` + leak + `\"}"}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := egresstest.NewTokenEndpoint(testID, testSecret, time.Hour)
			defer e.Close()
			e.Script(func(int) egresstest.Answer { return tc.answer })
			core, logs := observer.New(zapcore.DebugLevel)
			log := zap.New(core)
			topts := TokenOptions{URL: e.URL, ClientID: testID, ClientSecret: testSecret}
			s := NewSource(SourceOptions{Name: "vendor", Token: topts, Logger: log, WaitTimeout: 500 * time.Millisecond,
				MinBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
			defer s.Close()
			up := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			defer up.Close()
			h := newTestHandler(t, up.URL, s, func(o *HandlerOptions) { o.Logger = log })
			rr := httptest.NewRecorder()
			h.ServeHTTP(rr, httptest.NewRequest(http.MethodPost, "http://localhost/v1/hooks", strings.NewReader("{}")))
			if rr.Code != http.StatusServiceUnavailable {
				t.Fatalf("status %d, want 503: %s", rr.Code, rr.Body)
			}
			var all strings.Builder
			all.WriteString(rr.Body.String() + s.Status().LastError)
			_, err := Fetch(context.Background(), topts)
			if err == nil {
				t.Fatal("Fetch succeeded")
			}
			all.WriteString(err.Error())
			for _, l := range logs.All() {
				for k, v := range l.ContextMap() {
					all.WriteString(k + toString(v))
				}
			}
			if strings.Contains(all.String(), leak) {
				t.Fatalf("a token-bearing field's value was shown:\n%s", all.String())
			}
			if !strings.Contains(err.Error(), redacted) {
				t.Errorf("the answer was not shown, redacted: %v", err)
			}
		})
	}
}

// TestScrubFieldText: prose that merely names a weak field ("error code:")
// is left alone; token-bearing values in every spelling are replaced once.
func TestScrubFieldText(t *testing.T) {
	for in, want := range map[string]string{
		"error code: invalid_scope":           "error code: invalid_scope",
		`{"access_token":"[redacted]"}`:       `{"access_token":"[redacted]"}`,
		"a=1&code=abc&b=2":                    "a=1&code=" + redacted + "&b=2",
		`"Token" : "a\"b"`:                    `"Token" : "` + redacted + `"`,
		"refresh_token=abc access_token: xyz": "refresh_token=" + redacted + " access_token: " + redacted,
		"client_secret='abc'":                 "client_secret='" + redacted + "'",
	} {
		if got := scrubFieldText(in); got != want {
			t.Errorf("%q → %q, want %q", in, got, want)
		}
	}
}
