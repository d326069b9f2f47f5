package issuer

import (
	"testing"
	"time"
)

// BenchmarkMint is the cost of signing one access token with the token
// endpoint's key, by algorithm (docs/performance.md):
//
//	go test ./issuer -run '^$' -bench Mint -benchmem -count 3
func BenchmarkMint(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256"} {
		b.Run(alg, func(b *testing.B) {
			key, err := GenerateKey(alg)
			if err != nil {
				b.Fatal(err)
			}
			f := newFixture(b, func(o *Options) { o.Keys = []*Key{key} })
			now := time.Now()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.srv.mint("aftership", []string{"webhooks:write"}, now, time.Hour); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
