package egress

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/tokengate/tokengate/egress/egresstest"
	"github.com/tokengate/tokengate/signature/redistest"
)

// TestSlowVendorExpiryCountsFromTheRequest: a vendor answers 2 s after it
// issued a 10 s token. The token's expiry is counted from when the
// request was sent, not from when the answer arrived: at most 10 s after
// the send, so at most 8 s after the answer (counted from the answer, a
// request would carry it up to 2 s past the vendor's expiry, and get a
// 401). For client credentials, a refresh token, and a shared refresh
// token (the expiry stored in Redis, as another replica reads it). Real
// HTTP token endpoints; the bound is the request's own duration, which
// the delay makes at least 2 s, whatever the machine's load.
func TestSlowVendorExpiryCountsFromTheRequest(t *testing.T) {
	const ttl, delay = 10 * time.Second, 2 * time.Second
	for _, tc := range []struct {
		name string
		// obtain returns a token obtained from a vendor that answers
		// delay after issuing a token valid for ttl.
		obtain func(t *testing.T) (*Token, error)
	}{
		{"client credentials", func(t *testing.T) (*Token, error) {
			e := egresstest.NewTokenEndpoint(testID, testSecret, ttl)
			t.Cleanup(e.Close)
			e.Script(func(int) egresstest.Answer { return egresstest.Answer{Delay: delay} })
			return Fetch(t.Context(), TokenOptions{URL: e.URL, ClientID: testID, ClientSecret: testSecret})
		}},
		{"refresh token", func(t *testing.T) (*Token, error) {
			srv := egresstest.NewAuthServer("deployteq-app", "app-secret", ttl)
			t.Cleanup(srv.Close)
			o := AuthCodeOptions{Name: "deployteq",
				Token: TokenOptions{URL: srv.TokenURL(), ClientID: "deployteq-app", ClientSecret: "app-secret", Auth: AuthBasic,
					Scopes: []string{"apps.webhook:execute", "offline_access"}},
				AuthorizeURL: srv.AuthorizeURL(), RedirectURI: "https://app.example.com/oauth/callback",
				RefreshTokenFile: filepath.Join(t.TempDir(), "refresh-token")}
			forgetRefreshFile(t, o.RefreshTokenFile)
			authorized(t, o)
			srv.SetRefreshDelay(delay)
			return NewRefreshGrant(o).Token(t.Context())
		}},
		{"shared refresh token, as another replica reads it", func(t *testing.T) (*Token, error) {
			srv := egresstest.NewAuthServer("deployteq-app", "app-secret", ttl)
			t.Cleanup(srv.Close)
			rd := redistest.Start(t)
			a, ao := acReplica(t, srv, rd.URL(), 5*time.Second)
			x, _ := acReplica(t, srv, rd.URL(), 5*time.Second)
			authorizeShared(t, ao)
			srv.SetRefreshDelay(delay)
			if _, err := a.src.o.Grant.Token(t.Context()); err != nil {
				return nil, err
			}
			tok, err := x.src.o.Grant.Token(t.Context())
			if err == nil && !tok.fromShared {
				t.Fatal("the second replica did not take the stored token")
			}
			return tok, err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := tc.obtain(t)
			answered := time.Now()
			if err != nil {
				t.Fatal(err)
			}
			if latest := answered.Add(ttl - delay); tok.Expiry.After(latest) {
				t.Fatalf("expiry %v after the answer, want at most %v (the vendor issued the token %v before it answered)",
					tok.Expiry.Sub(answered).Round(time.Millisecond), ttl-delay, delay)
			}
			if tok.Obtained.After(answered.Add(-delay)) {
				t.Errorf("obtained %v before the answer, want at least %v (when the request was sent)", answered.Sub(tok.Obtained).Round(time.Millisecond), delay)
			}
			if life := tok.Lifetime(); life < ttl-time.Second || life > ttl {
				t.Errorf("lifetime %v, want about %v", life, ttl)
			}
		})
	}
}
