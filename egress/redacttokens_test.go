package egress

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestEchoedRefreshTokenEncodedRedacted: a vendor rotates the refresh
// token once, then answers the next refresh with an error that echoes
// the refresh token it was sent and the one before it, hex-, base64- or
// base64url-encoded. Neither shows in the app's 503, /readyz (Ready),
// the status page (Status) or a log line, in any of those forms; the
// error says [redacted] instead. A real HTTP token endpoint, through the
// real handler.
func TestEchoedRefreshTokenEncodedRedacted(t *testing.T) {
	// Tokens whose base64 holds + and / (the standard and URL alphabets
	// differ) and whose hex holds letters (upper case differs).
	const rt1, rt2 = "Rt1.???>>>~~~.first-refresh-token", "Rt2.???>>>~~~.second-refresh-token"
	for _, enc := range []struct {
		name string
		f    func(string) string
	}{
		{"hex", func(s string) string { return hex.EncodeToString([]byte(s)) }},
		{"HEX", func(s string) string { return strings.ToUpper(hex.EncodeToString([]byte(s))) }},
		{"base64", func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }},
		{"base64url", func(s string) string { return base64.URLEncoding.EncodeToString([]byte(s)) }},
		{"raw base64", func(s string) string { return base64.RawStdEncoding.EncodeToString([]byte(s)) }},
		{"raw base64url", func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }},
	} {
		t.Run(enc.name, func(t *testing.T) {
			var n atomic.Int32
			vendor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_ = r.ParseForm()
				w.Header().Set("Content-Type", "application/json")
				if n.Add(1) == 1 {
					_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "at-first", "token_type": "bearer", "expires_in": 3600, "refresh_token": rt2})
					return
				}
				w.WriteHeader(http.StatusBadRequest)
				_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_request",
					"error_description": "malformed grant " + enc.f(r.PostForm.Get("refresh_token")) + ", after " + enc.f(rt1)})
			}))
			defer vendor.Close()
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"ok":true}`)) }))
			defer up.Close()
			file := filepath.Join(t.TempDir(), "refresh-token")
			forgetRefreshFile(t, file)
			if err := WriteFileAtomic(file, []byte(rt1+"\n")); err != nil {
				t.Fatal(err)
			}
			core, logs := observer.New(zapcore.DebugLevel)
			log := zap.New(core)
			topts := TokenOptions{URL: vendor.URL, ClientID: "app", ClientSecret: "app-secret"}
			s := NewSource(SourceOptions{Name: "vendor", Token: topts, Logger: log, WaitTimeout: 2 * time.Second,
				Grant: NewRefreshGrant(AuthCodeOptions{Name: "vendor", Token: topts, RefreshTokenFile: file})})
			defer s.Close()
			h := newTestHandler(t, up.URL, s, func(o *HandlerOptions) { o.Logger = log })
			tok, err := s.Token(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			s.Invalidate(tok) // the next request refreshes again
			if code := serveOne(h); code != http.StatusServiceUnavailable {
				t.Fatalf("status %d, want 503", code)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "http://127.0.0.1/v1/things", strings.NewReader("{}")))
			var all strings.Builder
			all.WriteString(rec.Body.String())
			if err := s.Ready(); err != nil {
				all.WriteString(err.Error())
			}
			all.WriteString(s.Status().LastError)
			for _, l := range logs.All() {
				all.WriteString(l.Message)
				for k, v := range l.ContextMap() {
					all.WriteString(k + toString(v))
				}
			}
			text := all.String()
			for _, leak := range []string{enc.f(rt1), enc.f(rt2), rt1, rt2} {
				if strings.Contains(text, leak) {
					t.Fatalf("a refresh token leaked (%s) into the answer, /readyz, the status or the logs:\n%s", enc.name, text)
				}
			}
			if !strings.Contains(rec.Body.String(), "malformed grant "+redacted+", after "+redacted) {
				t.Errorf("the echoed tokens were not shown redacted:\n%s", rec.Body.String())
			}
		})
	}
}
