package gate

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// hugeErrorServer answers every request with status and an 8 MB body of
// contentType, as a broken identity provider or vendor did.
func hugeErrorServer(t *testing.T, status int, contentType string) *httptest.Server {
	t.Helper()
	body := bytes.Repeat([]byte("E"), 8<<20)
	if contentType == "application/json" {
		body = []byte(`{"error":"server_error","error_description":"` + strings.Repeat("E", 8<<20) + `"}`)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestHugeRemoteErrorBodiesGiveBoundedLogLines: an identity provider whose
// discovery answers a 500 with an 8 MB error page, and token endpoints
// answering 8 MB errors (plain text, JSON), give log lines and status
// page texts of at most a few KiB: every error text that carries a remote
// body is cut where it is made.
func TestHugeRemoteErrorBodiesGiveBoundedLogLines(t *testing.T) {
	idp := hugeErrorServer(t, http.StatusInternalServerError, "text/html")
	plain := hugeErrorServer(t, http.StatusServiceUnavailable, "text/plain")
	jsonErr := hugeErrorServer(t, http.StatusBadRequest, "application/json")
	t.Setenv("TG_HUGE_SECRET", "s3cret")
	y := fmt.Sprintf(`listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream: http://127.0.0.1:9
issuers: [{ name: idp, issuer: %s, audiences: [https://hooks.example.com] }]
routes:
  - { name: api, path: /api, require: { issuers: [idp] } }
egress:
  - name: plain
    listen: 127.0.0.1:0
    upstream: https://api.vendor.example
    ready_requires_token: false
    insecure_http: true
    token: { url: %s, client_id: c, client_secret: "${TG_HUGE_SECRET}" }
  - name: json
    listen: 127.0.0.1:0
    upstream: https://api.vendor.example
    ready_requires_token: false
    insecure_http: true
    token: { url: %s, client_id: c, client_secret: "${TG_HUGE_SECRET}" }
`, idp.URL, plain.URL, jsonErr.URL)
	path := filepath.Join(t.TempDir(), "tokengate.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	ctx, cancel := context.WithCancel(context.Background())
	g, err := startWith(ctx, path, Options{Logger: zap.New(core)})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = g.Shutdown(context.Background()) })
	eventually(t, "the discovery failure and both token failures logged", func() bool {
		return logs.FilterMessageSnippet("issuer not ready yet").Len() > 0 &&
			logs.FilterMessage("token request failed").FilterField(zap.String("egress", "plain")).Len() > 0 &&
			logs.FilterMessage("token request failed").FilterField(zap.String("egress", "json")).Len() > 0
	})
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	for _, e := range logs.All() {
		buf, err := enc.EncodeEntry(e.Entry, e.Context)
		if err != nil {
			t.Fatal(err)
		}
		if n := buf.Len(); n > 4<<10 {
			t.Errorf("a log line of %d bytes: %.300s…", n, buf.String())
		}
		buf.Free()
	}
	raw := get(t, "http://"+g.AdminAddr()+"/status.json")
	if len(raw) > 64<<10 {
		t.Errorf("status.json is %d bytes", len(raw))
	}
}
