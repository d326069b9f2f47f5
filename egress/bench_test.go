package egress

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

	"github.com/tokengate/tokengate/egress/egresstest"
)

// BenchmarkEgress compares an egress Handler holding a valid token with a
// bare httputil.ReverseProxy, both forwarding to the same upstream over
// loopback. Report the ratio of the two ns/op.
func BenchmarkEgress(b *testing.B) {
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	defer sink.Close()
	target, _ := url.Parse(sink.URL)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	e := egresstest.NewTokenEndpoint(testID, testSecret, time.Hour)
	defer e.Close()
	s := NewSource(SourceOptions{Name: "bench", Token: TokenOptions{URL: e.URL, ClientID: testID, ClientSecret: testSecret}})
	defer s.Close()
	if _, err := s.Token(context.Background()); err != nil {
		b.Fatal(err)
	}
	handlers := map[string]http.Handler{
		"bare":   &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) }, Transport: tr},
		"egress": NewHandler(HandlerOptions{Name: "bench", Upstream: target, Tokens: s, Transport: tr}),
	}
	for _, name := range []string{"bare", "egress"} {
		b.Run(name, func(b *testing.B) {
			h := handlers[name]
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest(http.MethodPost, "http://localhost/hooks/x", strings.NewReader(`{"tracking_number":"1Z999AA10123456784"}`))
					rr := httptest.NewRecorder()
					h.ServeHTTP(rr, req)
					if rr.Code != http.StatusOK {
						b.Fatalf("status %d", rr.Code)
					}
				}
			})
		})
	}
}
