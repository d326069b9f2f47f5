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

// TestCheckTokenNamesTheIdentityItsBucketUses: check --token says which
// verified identity the route's per-sender bucket counts (the route's key
// claim, else the other one), reads in Redis the very bucket the gate
// spends for a token without a client id, and says a token naming
// neither is refused 403 rate_limit_identity_missing.
func TestCheckTokenNamesTheIdentityItsBucketUses(t *testing.T) {
	srv := redistest.Start(t)
	idp := verifiertest.New()
	defer idp.Close()
	recv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer recv.Close()
	path := writeConfig(t, fmt.Sprintf(`
upstream: %s
issuers: [{ name: idp, issuer: %s, audiences: [https://hooks.example.com] }]
redis: { url: %q }
routes:
  - name: by-client
    path: /hooks/by-client
    rate_limit: { key: client_id, rate: 1/h, burst: 1 }
  - name: by-subject
    path: /hooks/by-subject
    rate_limit: { key: subject, rate: 1/h, burst: 1 }
`, recv.URL, idp.Issuer(), srv.URL()))
	mint := func(kv ...string) string {
		c := idp.Claims("https://hooks.example.com")
		delete(c, "client_id")
		delete(c, "sub")
		for i := 0; i+1 < len(kv); i += 2 {
			c[kv[i]] = kv[i+1]
		}
		return idp.Mint(c)
	}
	check := func(tok, url string) (string, error) {
		var out bytes.Buffer
		err := Token(context.Background(), path, tok, url, &out)
		return out.String(), err
	}
	onlySub := mint("sub", "bob")
	cases := []struct {
		name, token, url, want string
		refused                bool
	}{
		{"client id", mint("client_id", "alice", "sub", "s"), "POST /hooks/by-client",
			`✓ rate_limit 1/h, burst 1 per client_id: client_id "alice" of issuer "idp" has 1.0 of 1 requests left now`, false},
		{"no client id", onlySub, "POST /hooks/by-client",
			`✓ rate_limit 1/h, burst 1 per client_id: sub "bob" of issuer "idp" (the token has no client_id: counted by its sub instead) has 1.0 of 1 requests left now`, false},
		{"no sub", mint("appid", "v1-app"), "POST /hooks/by-subject",
			`✓ rate_limit 1/h, burst 1 per subject: client_id "v1-app" of issuer "idp" (the token has no sub: counted by its client_id instead) has 1.0 of 1 requests left now`, false},
		{"neither", mint(), "POST /hooks/by-client",
			`✗ rate_limit 1/h, burst 1 per client_id: the token names no client_id or sub: the gate answers 403 rate_limit_identity_missing`, true},
	}
	for _, c := range cases {
		out, err := check(c.token, c.url)
		if !strings.Contains(out, c.want) || errors.Is(err, ErrRefused) != c.refused {
			t.Fatalf("%s: %v\n%s\nwant %q", c.name, err, out, c.want)
		}
		if c.refused && !strings.Contains(out, "decision REFUSED: 403 rate_limit_identity_missing") {
			t.Fatalf("%s: the gate's decision is not the 403:\n%s", c.name, out)
		}
	}
	// A gate spends bob's bucket: check reads that very bucket.
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
	req := httptest.NewRequest(http.MethodPost, "/hooks/by-client", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+onlySub)
	rec := httptest.NewRecorder()
	st.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("the gate's request: %d %s", rec.Code, rec.Body)
	}
	out, err := check(onlySub, "POST /hooks/by-client")
	if !errors.Is(err, ErrRefused) || !strings.Contains(out, `sub "bob" of issuer "idp" (the token has no client_id: counted by its sub instead) is past it now: the gate answers 429 rate_limited`) {
		t.Fatalf("bob's spent bucket: %v\n%s", err, out)
	}
}
