package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/verifier"
)

// instantUpstream answers 200 without a network, so the benchmarks see the
// handler's own cost.
type instantUpstream struct{}

func (instantUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
	}
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, Request: r, ProtoMajor: 1, ProtoMinor: 1}, nil
}

func benchRequest(token string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/hooks/aftership/orders", strings.NewReader(smallBody))
	r.Header.Set("Authorization", "Bearer "+token)
	r.Header.Set("Content-Type", "application/json")
	return r
}

const smallBody = `{"event":"tracking_update","tracking_number":"1Z999AA10123456784"}`

// BenchmarkHandlerCachedToken is one webhook through the whole handler with
// a token already in the cache (the jwt-hot path without the network).
func BenchmarkHandlerCachedToken(b *testing.B) { benchCachedToken(b, zap.NewNop()) }

// BenchmarkHandlerCachedTokenAccessLog is the same with the access log on,
// as users run it: one JSON line per request (to io.Discard, so the
// encoding is measured, not the terminal).
func BenchmarkHandlerCachedTokenAccessLog(b *testing.B) {
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey, enc.EncodeTime = "ts", zapcore.ISO8601TimeEncoder
	benchCachedToken(b, zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(io.Discard), zapcore.InfoLevel)))
}

func benchCachedToken(b *testing.B, log *zap.Logger) {
	cfg, err := config.Parse([]byte("upstream: http://127.0.0.1:1\nissuers: [{name: idp, issuer: 'https://idp/', audiences: [a]}]\nroutes: [{path_prefix: /hooks, methods: [POST], require: {scopes: ['webhooks:write']}}]\n"), b.TempDir(), config.Options{})
	if err != nil {
		b.Fatal(err)
	}
	cache, _ := verifier.NewCache(verifier.Func(func(context.Context, string) (*verifier.Principal, error) {
		return &verifier.Principal{Source: "idp", Subject: "aftership", ClientID: "aftership", Scopes: []string{"webhooks:write"}, Expiry: time.Now().Add(time.Hour)}, nil
	}), verifier.CacheOptions{MaxEntries: 10, MaxTTL: time.Hour})
	h, err := New(cfg, cache, Options{Transport: instantUpstream{}, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	token := strings.Repeat("eyJhbGciOiJSUzI1NiJ9.", 40)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, benchRequest(token))
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}

// BenchmarkBareReverseProxy is the same request through a bare
// httputil.ReverseProxy: the baseline for the handler's overhead.
func BenchmarkBareReverseProxy(b *testing.B) {
	target, _ := url.Parse("http://127.0.0.1:1")
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() }, Transport: instantUpstream{}}
	token := strings.Repeat("eyJhbGciOiJSUzI1NiJ9.", 40)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		rp.ServeHTTP(w, benchRequest(token))
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}
