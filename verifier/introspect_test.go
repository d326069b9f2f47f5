package verifier

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengate/tokengate/verifier/verifiertest"
)

func newIntrospection(t *testing.T, in *verifiertest.Introspector, mod func(*IntrospectionOptions)) *Introspection {
	t.Helper()
	o := IntrospectionOptions{
		Name: "partner", URL: in.URL(), ClientID: in.ClientID, ClientSecret: in.ClientSecret,
		Issuer: "https://partner.example", Audiences: []string{"https://hooks.example.com"},
		Client: &http.Client{Timeout: 500 * time.Millisecond},
	}
	if mod != nil {
		mod(&o)
	}
	v, err := NewIntrospection(o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestIntrospection(t *testing.T) {
	cases := []struct {
		name    string
		setup   func(in *verifiertest.Introspector)
		mod     func(*IntrospectionOptions)
		wantErr error
		reason  string
	}{
		{name: "active, basic auth", setup: func(in *verifiertest.Introspector) {
			in.Add("tok", verifiertest.ActiveClaims("webhooks:write", time.Hour))
		}},
		{name: "active, post auth", setup: func(in *verifiertest.Introspector) {
			in.Add("tok", verifiertest.ActiveClaims("webhooks:write", time.Hour))
		}, mod: func(o *IntrospectionOptions) { o.PostAuth = true }},
		{name: "inactive", wantErr: ErrInvalidToken, reason: "token is not active"},
		{name: "active but exp passed", setup: func(in *verifiertest.Introspector) { in.Add("tok", verifiertest.ActiveClaims("x", -time.Minute)) }, wantErr: ErrInvalidToken, reason: "token expired"},
		{name: "wrong issuer", setup: func(in *verifiertest.Introspector) { in.Add("tok", verifiertest.ActiveClaims("x", time.Hour)) }, mod: func(o *IntrospectionOptions) { o.Issuer = "https://other" }, wantErr: ErrInvalidToken, reason: "issuer not accepted"},
		{name: "wrong audience", setup: func(in *verifiertest.Introspector) { in.Add("tok", verifiertest.ActiveClaims("x", time.Hour)) }, mod: func(o *IntrospectionOptions) { o.Audiences = []string{"https://else"} }, wantErr: ErrInvalidToken, reason: "audience not accepted"},
		{name: "answer without iss when issuer is set", setup: func(in *verifiertest.Introspector) {
			in.Add("tok", with(verifiertest.ActiveClaims("x", time.Hour), "iss", nil))
		}, wantErr: ErrInvalidToken, reason: "issuer not accepted"},
		{name: "refresh token", setup: func(in *verifiertest.Introspector) {
			in.Add("tok", with(verifiertest.ActiveClaims("x", time.Hour), "token_type", "refresh_token"))
		}, wantErr: ErrInvalidToken, reason: "not an access token"},
		{name: "ID token by URN", setup: func(in *verifiertest.Introspector) {
			in.Add("tok", with(verifiertest.ActiveClaims("x", time.Hour), "token_type", "urn:ietf:params:oauth:token-type:id_token"))
		}, wantErr: ErrInvalidToken, reason: "not an access token"},
		{name: "Cognito refresh token_use", setup: func(in *verifiertest.Introspector) {
			in.Add("tok", with(verifiertest.ActiveClaims("x", time.Hour), "token_use", "refresh"))
		}, wantErr: ErrInvalidToken, reason: "not an access token"},
		{name: "access token type is fine", setup: func(in *verifiertest.Introspector) {
			in.Add("tok", with(verifiertest.ActiveClaims("webhooks:write", time.Hour), "token_type", "access_token", "token_use", "access"))
		}},
		{name: "Active instead of active", setup: func(in *verifiertest.Introspector) {
			in.AddRaw("tok", fmt.Sprintf(`{"Active":true,"iss":"https://partner.example","aud":"https://hooks.example.com","exp":%d}`, time.Now().Add(time.Hour).Unix()))
		}, wantErr: ErrUnavailable},
		{name: "active given twice", setup: func(in *verifiertest.Introspector) {
			in.AddRaw("tok", fmt.Sprintf(`{"active":false,"active":true,"iss":"https://partner.example","aud":"https://hooks.example.com","exp":%d}`, time.Now().Add(time.Hour).Unix()))
		}, wantErr: ErrInvalidToken, reason: "introspection answer has malformed claims"},
		{name: "EXP instead of exp is no expiry, Scope is no scope", setup: func(in *verifiertest.Introspector) {
			in.AddRaw("tok", fmt.Sprintf(`{"active":true,"iss":"https://partner.example","aud":"https://hooks.example.com","time.Now().Add(time.Hour).Unix()":%d,"Scope":"webhooks:write","client_id":"partner"}`, time.Now().Add(time.Hour).Unix()))
		}, wantErr: nil, reason: "no-scope"},
		{name: "ISS instead of iss", setup: func(in *verifiertest.Introspector) {
			in.AddRaw("tok", fmt.Sprintf(`{"active":true,"ISS":"https://partner.example","aud":"https://hooks.example.com","exp":%d}`, time.Now().Add(time.Hour).Unix()))
		}, wantErr: ErrInvalidToken, reason: "issuer not accepted"},
		{name: "endpoint 500", setup: func(in *verifiertest.Introspector) { in.SetStatus(500) }, wantErr: ErrUnavailable},
		{name: "tokengate's credentials refused", mod: func(o *IntrospectionOptions) { o.ClientSecret = "wrong" }, wantErr: ErrUnavailable},
		{name: "endpoint timeout", setup: func(in *verifiertest.Introspector) { in.SetDelay(2 * time.Second) }, wantErr: ErrUnavailable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := verifiertest.NewIntrospector()
			defer in.Close()
			if c.setup != nil {
				c.setup(in)
			}
			v := newIntrospection(t, in, c.mod)
			p, err := v.Verify(context.Background(), "tok")
			if c.wantErr == nil && c.reason == "no-scope" {
				if err != nil || p.HasScope("webhooks:write") || !p.Expiry.IsZero() {
					t.Fatalf("differently cased names were read: %+v, %v", p, err)
				}
				return
			}
			if c.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if p.Source != "partner" || p.ClientID != "partner" || !p.HasScope("webhooks:write") || p.Expiry.IsZero() || p.Issuer != "https://partner.example" {
					t.Fatalf("principal = %+v", p)
				}
				if f := in.LastForm(); f.Get("token") != "tok" || f.Get("token_type_hint") != "access_token" {
					t.Fatalf("form = %v", f)
				}
				return
			}
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("err = %v, want %v", err, c.wantErr)
			}
			if c.wantErr == ErrUnavailable && errors.Is(err, ErrInvalidToken) {
				t.Fatalf("outage reported as invalid token: %v", err)
			}
			if c.reason != "" && Reason(err) != c.reason {
				t.Fatalf("reason = %q, want %q", Reason(err), c.reason)
			}
		})
	}
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newCache(t *testing.T, next Verifier, clk *clock) *Cache {
	t.Helper()
	c, err := NewCache(next, CacheOptions{MaxEntries: 100, MaxTTL: 5 * time.Minute, NegativeTTL: 10 * time.Second, NegativeMaxEntries: 10, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCachedTokenMakesNoSecondCall(t *testing.T) {
	in := verifiertest.NewIntrospector()
	defer in.Close()
	in.Add("tok", verifiertest.ActiveClaims("x", time.Hour))
	clk := &clock{t: time.Now()}
	c := newCache(t, newIntrospection(t, in, nil), clk)
	for range 5 {
		if _, err := c.Verify(context.Background(), "tok"); err != nil {
			t.Fatal(err)
		}
	}
	if in.Calls() != 1 {
		t.Fatalf("introspection calls = %d, want 1", in.Calls())
	}
	// Past max TTL the entry is verified again.
	clk.Add(5*time.Minute + time.Second)
	if _, err := c.Verify(context.Background(), "tok"); err != nil || in.Calls() != 2 {
		t.Fatalf("after max TTL: err=%v calls=%d, want a second call", err, in.Calls())
	}
}

func TestCacheEntryNeverOutlivesTokenExpiry(t *testing.T) {
	in := verifiertest.NewIntrospector()
	defer in.Close()
	in.Add("tok", verifiertest.ActiveClaims("x", 30*time.Second))
	clk := &clock{t: time.Now()}
	c := newCache(t, newIntrospection(t, in, func(o *IntrospectionOptions) { o.Now = clk.Now }), clk)
	if _, err := c.Verify(context.Background(), "tok"); err != nil {
		t.Fatal(err)
	}
	clk.Add(31 * time.Second) // token expired; max TTL (5m) not reached
	_, err := c.Verify(context.Background(), "tok")
	if !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("expired token served from cache: err = %v", err)
	}
	if in.Calls() != 2 {
		t.Fatalf("calls = %d, want the expired entry dropped and the token asked about again", in.Calls())
	}
}

func TestNegativeCacheOnlyForRemoteRejections(t *testing.T) {
	in := verifiertest.NewIntrospector()
	defer in.Close()
	clk := &clock{t: time.Now()}
	c := newCache(t, newIntrospection(t, in, nil), clk)
	for range 3 {
		if _, err := c.Verify(context.Background(), "inactive"); Reason(err) != "token is not active" {
			t.Fatalf("err = %v", err)
		}
	}
	if in.Calls() != 1 {
		t.Fatalf("inactive token: %d calls, want 1 (negative cache)", in.Calls())
	}
	clk.Add(11 * time.Second)
	_, _ = c.Verify(context.Background(), "inactive")
	if in.Calls() != 2 {
		t.Fatalf("after negative TTL: %d calls, want 2", in.Calls())
	}
	// Local rejections are not cached.
	var local atomic.Int64
	lc := newCache(t, Func(func(context.Context, string) (*Principal, error) {
		local.Add(1)
		return nil, invalid("signature verification failed", nil)
	}), clk)
	for range 3 {
		_, _ = lc.Verify(context.Background(), "forged")
	}
	if local.Load() != 3 {
		t.Fatalf("local rejection cached: %d verifications, want 3", local.Load())
	}
}

func TestUnavailableIsNeverCached(t *testing.T) {
	in := verifiertest.NewIntrospector()
	defer in.Close()
	in.Add("tok", verifiertest.ActiveClaims("x", time.Hour))
	in.SetStatus(503)
	c := newCache(t, newIntrospection(t, in, nil), &clock{t: time.Now()})
	if _, err := c.Verify(context.Background(), "tok"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
	in.SetStatus(0)
	if _, err := c.Verify(context.Background(), "tok"); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

func TestConcurrentMissesCoalesce(t *testing.T) {
	in := verifiertest.NewIntrospector()
	defer in.Close()
	in.Add("tok", verifiertest.ActiveClaims("x", time.Hour))
	in.SetDelay(50 * time.Millisecond)
	c := newCache(t, newIntrospection(t, in, nil), &clock{t: time.Now()})
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 100 {
		wg.Go(func() {
			<-start
			if _, err := c.Verify(context.Background(), "tok"); err != nil {
				t.Error(err)
			}
		})
	}
	close(start)
	wg.Wait()
	if in.Calls() != 1 {
		t.Fatalf("100 concurrent requests made %d introspection calls, want 1", in.Calls())
	}
	if s := c.Stats(); s.Verifications != 1 {
		t.Fatalf("stats = %+v", s)
	}
}

func TestCacheKeyIsNotTheToken(t *testing.T) {
	k := Key("secret-token")
	if string(k[:]) == "secret-token" || k == Key("secret-token2") {
		t.Fatal("cache key must be a hash of the token")
	}
}

func TestExpiredEntriesDoNotAccumulate(t *testing.T) {
	clk := &clock{t: time.Now()}
	var n atomic.Int64
	c, err := NewCache(Func(func(context.Context, string) (*Principal, error) {
		n.Add(1)
		return &Principal{Expiry: clk.Now().Add(time.Minute)}, nil
	}), CacheOptions{MaxEntries: 100000, MaxTTL: time.Hour, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	// A stream of short-lived tokens: one new token a second for an hour.
	for i := range 3600 {
		if _, err := c.Verify(context.Background(), fmt.Sprintf("token-%d", i)); err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Second)
	}
	if got := c.Len(); got > 70 {
		t.Fatalf("%d entries kept for ~60 live tokens: expired entries pile up until capacity", got)
	}
}
