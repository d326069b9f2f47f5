package diagnose

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/stack"
	"github.com/tokengate/tokengate/signature/redistest"
	"github.com/tokengate/tokengate/verifier/verifiertest"
)

// TestCheckTokenReadsTheSharedRateLimit: with a redis: block, check
// --token reads the sender's bucket on the matched route without taking
// from it (run many times, it leaves the bucket as it was), and once a
// gate has spent the bucket it says the sender is limited (exit 1).
// Without Redis it names the limit and says it cannot see it.
func TestCheckTokenReadsTheSharedRateLimit(t *testing.T) {
	srv := redistest.Start(t)
	idp := verifiertest.New()
	defer idp.Close()
	recv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer recv.Close()
	y := fmt.Sprintf(`
upstream: %s
issuers: [{ name: idp, issuer: %s, audiences: [https://hooks.example.com] }]
routes:
  - name: aftership
    path: /hooks/aftership
    methods: [POST]
    rate_limit: { key: client_id, rate: 1/h, burst: 2 }
`, recv.URL, idp.Issuer())
	tok := idp.Mint(idp.Claims("https://hooks.example.com"))
	check := func(path string) (string, error) {
		var out bytes.Buffer
		err := Token(context.Background(), path, tok, "", &out)
		return out.String(), err
	}
	memory := writeConfig(t, y)
	out, err := check(memory)
	if err != nil || !strings.Contains(out, `✓ rate_limit 1/h, burst 2 per client_id: client_id "aftership" of issuer "idp" is counted in each running gate's memory, which check cannot see`) {
		t.Fatalf("without Redis: %v\n%s", err, out)
	}
	shared := y + fmt.Sprintf("redis: { url: %q }\n", srv.URL())
	path := writeConfig(t, shared)
	for range 5 {
		out, err = check(path)
		if err != nil || !strings.Contains(out, `✓ rate_limit 1/h, burst 2 per client_id: client_id "aftership" of issuer "idp" has 2.0 of 2 requests left now (read in Redis without taking one)`) {
			t.Fatalf("a fresh bucket: %v\n%s", err, out)
		}
	}
	// A gate on the same configuration spends the bucket.
	cfg, err := config.Load(path, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := stack.NewBuilder(stack.Options{})
	defer b.Close()
	st, err := b.Build(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.CommitReplay()
	for i := range 2 {
		req := httptest.NewRequest(http.MethodPost, "/hooks/aftership", strings.NewReader("{}"))
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		st.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("the gate's request %d: %d %s (check --token took a token)", i+1, rec.Code, rec.Body)
		}
	}
	out, err = check(path)
	if !errors.Is(err, ErrRefused) || !strings.Contains(out, `✗ rate_limit 1/h, burst 2 per client_id: client_id "aftership" of issuer "idp" is past it now: the gate answers 429 rate_limited; its next request is accepted in`) ||
		!strings.Contains(out, "decision REFUSED: 429 rate_limited") {
		t.Fatalf("a spent bucket: %v\n%s", err, out)
	}
}
