package proxy

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/verifier"
)

// BenchmarkHandlerScale is the CPU of one webhook with a cached token
// through the whole handler as the configuration and the cache grow: one
// dimension at a time, the others at their smallest (1 route, 1 issuer,
// 1,000 cached tokens). docs/performance.md reports the table:
//
//	go test ./proxy -run '^$' -bench HandlerScale -benchtime 20000x -count 5
//
// cpu-ns/op is the process's CPU time (user+system, the garbage collector
// included) per request: unlike ns/op, it does not grow while other
// processes hold the CPU.
func BenchmarkHandlerScale(b *testing.B) {
	for _, c := range []struct {
		name                    string
		routes, issuers, tokens int
	}{
		{"routes=1", 1, 1, 1_000},
		{"routes=100", 100, 1, 1_000},
		{"routes=10000", 10_000, 1, 1_000},
		{"issuers=100", 1, 100, 1_000},
		{"tokens=100k", 1, 1, 100_000},
		{"tokens=1M", 1, 1, 1_000_000},
	} {
		b.Run(c.name, func(b *testing.B) { benchScale(b, c.routes, c.issuers, c.tokens) })
	}
}

// benchScale sends POST /hooks/r<last>/orders (the last route: the one a
// scan reaches last) with tokens drawn in a scattered order from the
// cache's n distinct tokens, all cached before the clock starts, issued by
// the last of the issuers.
func benchScale(b *testing.B, nRoutes, nIssuers, nTokens int) {
	var y strings.Builder
	y.WriteString("upstream: http://127.0.0.1:1\nissuers:\n")
	for i := range nIssuers {
		fmt.Fprintf(&y, "  - { name: idp%d, issuer: 'https://idp%d.example/', audiences: [a] }\n", i, i)
	}
	y.WriteString(manyRoutes(nRoutes))
	cfg, err := config.Parse([]byte(y.String()), b.TempDir(), config.Options{})
	if err != nil {
		b.Fatal(err)
	}
	last := nRoutes - 1
	src := fmt.Sprintf("idp%d", nIssuers-1)
	scopes := []string{fmt.Sprintf("s%d", last)}
	exp := time.Now().Add(time.Hour)
	cache, err := verifier.NewCache(verifier.Func(func(context.Context, string) (*verifier.Principal, error) {
		return &verifier.Principal{Source: src, Issuer: "https://" + src + ".example/", Subject: "sender", ClientID: "sender", Scopes: scopes, Expiry: exp}, nil
	}), verifier.CacheOptions{MaxEntries: nTokens, MaxTTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	const tokenLen = 64
	all := make([]byte, nTokens*tokenLen)
	tokens := make([]string, nTokens)
	for i := range tokens {
		t := all[i*tokenLen : (i+1)*tokenLen]
		n := copy(t, fmt.Sprintf("eyJhbGciOiJFUzI1NiJ9.token-%09d.", i))
		for j := n; j < tokenLen; j++ {
			t[j] = 'A' + byte((i+j)%26)
		}
		tokens[i] = string(t)
		if _, err := cache.Verify(context.Background(), tokens[i]); err != nil {
			b.Fatal(err)
		}
	}
	all = nil
	if cache.Len() != nTokens {
		b.Fatalf("cache holds %d tokens, want %d", cache.Len(), nTokens)
	}
	h, err := New(cfg, cache, Options{Transport: instantUpstream{}, Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	path := fmt.Sprintf("/hooks/r%d/orders", last)
	const stride = 7919 // prime: consecutive requests land far apart in the cache
	i := 0
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		i = (i + stride) % nTokens
		r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(smallBody))
		r.Header.Set("Authorization", "Bearer "+tokens[i])
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatal(w.Code, w.Body.String())
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	if st := cache.Stats(); st.Verifications != uint64(nTokens) {
		b.Fatalf("%d verifications during the run: tokens left the cache", st.Verifications-uint64(nTokens))
	}
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
