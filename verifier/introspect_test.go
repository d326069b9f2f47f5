package verifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
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
		{name: "answer not UTF-8", setup: func(in *verifiertest.Introspector) {
			in.AddRaw("tok", fmt.Sprintf("{\"active\":true,\"sub\":\"ad\xffmin\",\"iss\":\"https://partner.example\",\"aud\":\"https://hooks.example.com\",\"exp\":%d}", time.Now().Add(time.Hour).Unix()))
		}, wantErr: ErrInvalidToken, reason: "introspection answer has malformed claims"},
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

// TestIntrospectionNoAuth: against an endpoint that takes no client
// credentials and refuses requests carrying any (ORY Hydra's admin port),
// NoAuth verifies, while Basic and post credentials are refused.
func TestIntrospectionNoAuth(t *testing.T) {
	in := verifiertest.NewIntrospector()
	defer in.Close()
	in.SetNoClientAuth(true)
	in.Add("tok", verifiertest.ActiveClaims("webhooks:write", time.Hour))
	for _, tc := range []struct {
		name string
		mod  func(*IntrospectionOptions)
		ok   bool
	}{
		{"none", func(o *IntrospectionOptions) { o.NoAuth, o.ClientID, o.ClientSecret = true, "", "" }, true},
		{"basic", nil, false},
		{"post", func(o *IntrospectionOptions) { o.PostAuth = true }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newIntrospection(t, in, tc.mod)
			p, err := v.Verify(context.Background(), "tok")
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && p.Scopes[0] != "webhooks:write" {
				t.Errorf("principal %+v", p)
			}
			if f := in.LastForm(); f.Has("client_id") != (tc.name == "post") {
				t.Errorf("form %v", f)
			}
		})
	}
}

// TestIntrospectionNeverFollowsRedirects: an endpoint that answers with a
// redirect (a moved or compromised endpoint) is an unavailable upstream
// (503); the redirect is never followed, so the sender's token and
// tokengate's client secret never reach the second server.
func TestIntrospectionNeverFollowsRedirects(t *testing.T) {
	for _, code := range []int{301, 302, 303, 307, 308} {
		for _, post := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d post=%v", code, post), func(t *testing.T) {
				second := verifiertest.NewIntrospector() // would answer "active" and counts every request
				defer second.Close()
				second.Add("tok", verifiertest.ActiveClaims("webhooks:write", time.Hour))
				var first atomic.Int64
				redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					first.Add(1)
					http.Redirect(w, r, second.URL(), code)
				}))
				defer redirector.Close()
				v := newIntrospection(t, second, func(o *IntrospectionOptions) { o.URL = redirector.URL + "/introspect"; o.PostAuth = post })
				p, err := v.Verify(context.Background(), "tok")
				if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalidToken) {
					t.Fatalf("a %d answer: principal %v, err = %v, want ErrUnavailable only", code, p, err)
				}
				if n := second.Calls(); n != 0 {
					t.Fatalf("the redirect was followed: the second server got %d request(s) (form %v)", n, second.LastForm())
				}
				if n := first.Load(); n != 1 {
					t.Fatalf("the endpoint got %d requests, want 1", n)
				}
			})
		}
	}
}

// TestIntrospectionPastMaxConcurrentIs503AtOnce: with MaxConcurrent calls
// held at the endpoint, one more token is answered 503 (retry) at once,
// never queued behind them; once they are answered, a slot is free again.
func TestIntrospectionPastMaxConcurrentIs503AtOnce(t *testing.T) {
	var calls atomic.Int64
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-release:
		case <-time.After(time.Minute): // bounded, whatever the test does
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"active": true, "iss": "https://partner.example", "aud": "https://hooks.example.com"})
	}))
	defer srv.Close()
	v, err := NewIntrospection(IntrospectionOptions{
		Name: "partner", URL: srv.URL, NoAuth: true, Issuer: "https://partner.example",
		Audiences: []string{"https://hooks.example.com"}, MaxConcurrent: 2, Client: &http.Client{Timeout: time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan error, 3)
	for range 2 {
		go func() { _, err := v.Verify(context.Background(), "tok"); held <- err }()
	}
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	pending := 2
	defer func() { // never leave a call behind, whatever failed
		free()
		for ; pending > 0; pending-- {
			select {
			case <-held:
			case <-time.After(10 * time.Second):
				t.Error("a held introspection call was not answered 10s after its release")
				return
			}
		}
	}()
	for deadline := time.Now().Add(10 * time.Second); calls.Load() < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the two calls did not reach the endpoint within 10s")
		}
	}
	go func() { _, err := v.Verify(context.Background(), "tok"); held <- err }()
	select {
	case err := <-held: // the two others are held: this is the third
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, errIntrospectionBusy) {
			t.Fatalf("a third token while two calls are held: %v, want 503 busy", err)
		}
	case <-time.After(5 * time.Second):
		pending++ // the third call is held too
		t.Fatal("a third token waited for a slot instead of being answered 503 at once")
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d calls reached the endpoint, want 2", n)
	}
	free()
	for ; pending > 0; pending-- {
		select {
		case err := <-held:
			if err != nil {
				t.Fatalf("a held call, released: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a held introspection call was not answered 10s after its release")
		}
	}
	if _, err := v.Verify(context.Background(), "tok"); err != nil {
		t.Fatalf("once the slots were freed: %v", err)
	}
}
