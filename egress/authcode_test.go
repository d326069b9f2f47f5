package egress

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengate/tokengate/egress/egresstest"
)

func authFixture(t *testing.T) (*egresstest.AuthServer, AuthCodeOptions) {
	t.Helper()
	srv := egresstest.NewAuthServer("deployteq-app", "app-secret", time.Hour)
	t.Cleanup(srv.Close)
	o := AuthCodeOptions{
		Name: "deployteq",
		Token: TokenOptions{URL: srv.TokenURL(), ClientID: "deployteq-app", ClientSecret: "app-secret", Auth: AuthBasic,
			Scopes: []string{"apps.webhook:execute", "offline_access"}},
		AuthorizeURL: srv.AuthorizeURL(), RedirectURI: "https://app.example.com/oauth/callback",
		RefreshTokenFile: filepath.Join(t.TempDir(), "refresh-token"),
	}
	forgetRefreshFile(t, o.RefreshTokenFile)
	return srv, o
}

// forgetRefreshFile drops path's process-wide state when the test ends,
// so that a later test's DrainRefreshes does not see it (a rotated token
// this test left unstored on purpose, in a directory that is gone).
func forgetRefreshFile(t *testing.T, path string) {
	t.Cleanup(func() {
		refreshFiles.Lock()
		defer refreshFiles.Unlock()
		delete(refreshFiles.m, resolvePath(path))
	})
}

// consent plays the browser: it opens the authorization URL and returns
// the address the server redirects to (as the user would copy it).
func consent(t *testing.T, a *Authorization) string {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(a.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize: %d", resp.StatusCode)
	}
	return resp.Header.Get("Location")
}

func fileToken(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestPasteFlow: the authorization URL carries state and an S256 PKCE
// challenge; the pasted redirect is checked and exchanged with the
// verifier; the refresh token lands in a 0600 file.
func TestPasteFlow(t *testing.T) {
	srv, o := authFixture(t)
	a, err := NewAuthorization(o)
	if err != nil {
		t.Fatal(err)
	}
	code, bare, err := a.Code(consent(t, a))
	if err != nil || bare {
		t.Fatalf("code from the redirect: %v (bare %v)", err, bare)
	}
	q := srv.LastAuthorize()
	sum := sha256.Sum256([]byte(a.verifier))
	for k, want := range map[string]string{
		"response_type": "code", "client_id": "deployteq-app", "redirect_uri": o.RedirectURI,
		"scope": "apps.webhook:execute offline_access", "state": a.state,
		"code_challenge_method": "S256", "code_challenge": base64.RawURLEncoding.EncodeToString(sum[:]),
	} {
		if q.Get(k) != want {
			t.Errorf("authorization URL %s = %q, want %q", k, q.Get(k), want)
		}
	}
	g, err := a.Exchange(context.Background(), code)
	if err != nil {
		t.Fatal(err)
	}
	if g.Scope != "apps.webhook:execute offline_access" || time.Until(g.Expiry) < 59*time.Minute {
		t.Errorf("granted %+v", g)
	}
	st, err := os.Stat(o.RefreshTokenFile)
	if err != nil || st.Mode().Perm() != 0o600 || fileToken(t, o.RefreshTokenFile) == "" {
		t.Fatalf("refresh token file: %v %v", st, err)
	}
	if _, err := a.Exchange(context.Background(), code); err == nil || !strings.Contains(err.Error(), "single-use") {
		t.Errorf("the same code twice: %v", err)
	}
}

func TestConsentRefusals(t *testing.T) {
	tests := []struct {
		name  string
		setup func(*egresstest.AuthServer)
		edit  func(string) string
		want  string
	}{
		{"state mismatch", nil, func(loc string) string { return strings.Replace(loc, "state=", "state=x", 1) }, ErrStateMismatch.Error()},
		{"access denied", func(s *egresstest.AuthServer) { s.SetDeny(true) }, nil, "did not consent (access_denied)"},
		{"expired code", func(s *egresstest.AuthServer) { s.SetCodeTTL(-time.Second) }, nil, "single-use and short-lived"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, o := authFixture(t)
			if tc.setup != nil {
				tc.setup(srv)
			}
			a, _ := NewAuthorization(o)
			loc := consent(t, a)
			if tc.edit != nil {
				loc = tc.edit(loc)
			}
			code, _, err := a.Code(loc)
			if err == nil {
				_, err = a.Exchange(context.Background(), code)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if _, err := os.Stat(o.RefreshTokenFile); !errors.Is(err, os.ErrNotExist) {
				t.Error("a refresh token file was written")
			}
		})
	}
}

// TestPKCEVerifierChecked: a code exchanged with another run's verifier
// is refused by the server.
func TestPKCEVerifierChecked(t *testing.T) {
	_, o := authFixture(t)
	a, _ := NewAuthorization(o)
	other, _ := NewAuthorization(o)
	code, _, err := a.Code(consent(t, a))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Exchange(context.Background(), code); err == nil || !strings.Contains(err.Error(), "PKCE") {
		t.Fatalf("exchange with the wrong verifier: %v", err)
	}
}

func authorized(t *testing.T, o AuthCodeOptions) {
	t.Helper()
	a, _ := NewAuthorization(o)
	code, _, err := a.Code(consent(t, a))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Exchange(context.Background(), code); err != nil {
		t.Fatal(err)
	}
}

// TestRefreshRotation: three refreshes in a row each store the server's
// new refresh token before the access token is returned; no old one is
// ever sent again (the server's reuse detection never fires).
func TestRefreshRotation(t *testing.T) {
	srv, o := authFixture(t)
	authorized(t, o)
	g := NewRefreshGrant(o)
	seen := map[string]bool{fileToken(t, o.RefreshTokenFile): true}
	for i := range 3 {
		tok, err := g.Token(context.Background())
		if err != nil {
			t.Fatalf("refresh %d: %v", i+1, err)
		}
		if !srv.Valid(tok.Value) {
			t.Fatalf("refresh %d: the access token is not the server's", i+1)
		}
		rt := fileToken(t, o.RefreshTokenFile)
		if seen[rt] {
			t.Fatalf("refresh %d: the file still holds an old refresh token", i+1)
		}
		seen[rt] = true
	}
	if srv.Refreshes() != 3 || srv.ReuseDetected() != 0 {
		t.Fatalf("refreshes %d, reuse detected %d; want 3 and 0", srv.Refreshes(), srv.ReuseDetected())
	}
}

// TestRotatedTokenWriteFails simulates a crash between receiving a
// rotated refresh token and storing it: the write fails, no access token
// is returned (the entry is not ready, saying why), the new refresh token
// is kept and stored once writing works, and the old one is never reused.
func TestRotatedTokenWriteFails(t *testing.T) {
	srv, o := authFixture(t)
	authorized(t, o)
	before := fileToken(t, o.RefreshTokenFile)
	var failing atomic.Bool // written here, read by the Source's flight
	failing.Store(true)
	o.WriteFile = func(path string, data []byte) error {
		if failing.Load() {
			return errors.New("read-only file system")
		}
		return WriteFileAtomic(path, data)
	}
	s := NewSource(SourceOptions{Name: "deployteq", Grant: NewRefreshGrant(o), WaitTimeout: 300 * time.Millisecond,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	defer s.Close()
	_, err := s.Token(context.Background())
	var te *TokenError
	if !errors.As(err, &te) || te.Code != errorNotStored {
		t.Fatalf("rotation with a failing write: %v, want %s", err, errorNotStored)
	}
	if r := s.Ready(); r == nil || !strings.Contains(r.Error(), "could not be written") {
		t.Fatalf("Ready = %v, want not ready naming the failed write", r)
	}
	if fileToken(t, o.RefreshTokenFile) != before {
		t.Fatal("the file changed although the write failed")
	}
	failing.Store(false)
	// The stored write is retried in the background (10-20 ms backoff);
	// each Token waits WaitTimeout for it, so a busy machine gets more
	// than one wait (CI once failed a single 300 ms one), bounded.
	tok, err := s.Token(context.Background())
	for end := time.Now().Add(10 * time.Second); err != nil && time.Now().Before(end); {
		tok, err = s.Token(context.Background())
	}
	if err != nil || !srv.Valid(tok.Value) {
		t.Fatalf("after the write works again: %v", err)
	}
	if fileToken(t, o.RefreshTokenFile) == before || srv.ReuseDetected() != 0 {
		t.Fatalf("reuse detected %d: the old refresh token was sent again", srv.ReuseDetected())
	}
}

// TestInvalidGrantIsNotRetried: a revoked grant → invalid_grant, the
// message names `tokengate authorize`, and later attempts make no request
// until the file changes.
func TestInvalidGrantIsNotRetried(t *testing.T) {
	srv, o := authFixture(t)
	authorized(t, o)
	srv.Revoke()
	g := NewRefreshGrant(o)
	_, err := g.Token(context.Background())
	var te *TokenError
	if !errors.As(err, &te) || te.Code != "invalid_grant" || !te.Permanent() || !strings.Contains(te.Description, "tokengate authorize deployteq") {
		t.Fatalf("revoked: %v", err)
	}
	n := srv.Requests()
	for range 3 {
		_, err = g.Token(context.Background())
	}
	if !errors.As(err, &te) || te.Code != errorAuthorizationRequired || srv.Requests() != n {
		t.Fatalf("after invalid_grant: %v, %d more requests; want %s and none", err, srv.Requests()-n, errorAuthorizationRequired)
	}
	authorized(t, o) // the operator runs authorize again
	if _, err := g.Token(context.Background()); err != nil {
		t.Fatalf("after a new consent: %v", err)
	}
}

func TestPastedForms(t *testing.T) {
	_, o := authFixture(t)
	a, _ := NewAuthorization(o)
	loc := consent(t, a)
	u, _ := url.Parse(loc)
	for _, in := range []string{loc, "  " + loc + "\n", "?" + u.RawQuery, u.RawQuery} {
		if code, bare, err := a.Code(in); err != nil || bare || code != u.Query().Get("code") {
			t.Errorf("%q: %q %v %v", in, code, bare, err)
		}
	}
	if code, bare, err := a.Code("just-the-code\n"); err != nil || !bare || code != "just-the-code" {
		t.Errorf("bare code: %q %v %v", code, bare, err)
	}
}

// waitFor receives from ch within 10s or fails the test naming what.
func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

type grantResult struct {
	tok *Token
	err error
}

func refreshAsync(ctx context.Context, g *RefreshGrant) <-chan grantResult {
	ch := make(chan grantResult, 1)
	go func() {
		tok, err := g.Token(ctx)
		ch <- grantResult{tok, err}
	}()
	return ch
}

// TestReloadedGrantWaitsForTheRefreshInFlight: a reload stops the old
// Source (its context is cancelled) while its refresh is at the server,
// and a new grant for the same file starts at once. The new grant waits;
// the old refresh runs to its end and stores the rotated token; the new
// grant then sends that one. The server never sees a refresh token twice,
// so the grant is not revoked.
func TestReloadedGrantWaitsForTheRefreshInFlight(t *testing.T) {
	srv, o := authFixture(t)
	authorized(t, o)
	arrived, abandoned, release := srv.StallRefreshes()
	defer release()
	oldCtx, stopOld := context.WithCancel(context.Background())
	old := refreshAsync(oldCtx, NewRefreshGrant(o))
	waitFor(t, arrived, "the old grant's refresh at the server")
	stopOld() // the reload stops the old Source
	fresh := refreshAsync(context.Background(), NewRefreshGrant(o))
	select {
	case <-arrived:
		t.Error("a second refresh reached the server while the first was in flight")
	case <-abandoned:
		t.Error("the refresh in flight was cancelled after the server rotated the token")
	case <-time.After(time.Second): // the new grant waits, as it should
	}
	release()
	if r := waitFor(t, old, "the old grant's refresh"); r.err != nil {
		t.Errorf("the refresh in flight: %v", r.err)
	}
	r := waitFor(t, fresh, "the new grant's refresh")
	if r.err != nil || !srv.Valid(r.tok.Value) {
		t.Fatalf("the new grant's refresh: %v", r.err)
	}
	if srv.ReuseDetected() != 0 || srv.Refreshes() != 2 {
		t.Fatalf("reuse detected %d, refreshes %d; want 0 and 2", srv.ReuseDetected(), srv.Refreshes())
	}
}

// TestCancelledRefreshStoresTheRotatedToken: SIGTERM cancels the Source
// while its refresh is at the server. The refresh still finishes and
// stores the rotated token (DrainRefreshes waits for it), so the next
// start refreshes with that one and the grant survives.
func TestCancelledRefreshStoresTheRotatedToken(t *testing.T) {
	srv, o := authFixture(t)
	authorized(t, o)
	before := fileToken(t, o.RefreshTokenFile)
	arrived, abandoned, release := srv.StallRefreshes()
	defer release()
	ctx, cancel := context.WithCancel(context.Background())
	res := refreshAsync(ctx, NewRefreshGrant(o))
	waitFor(t, arrived, "the refresh at the server")
	cancel()
	drained := make(chan error, 1)
	go func() { drained <- DrainRefreshes(context.Background()) }()
	select {
	case <-abandoned:
		t.Error("the refresh was cancelled after the server rotated the token")
	case <-drained:
		t.Error("DrainRefreshes returned while a refresh was at the server")
		drained <- nil
	case <-time.After(time.Second):
	}
	release()
	waitFor(t, res, "the cancelled refresh")
	if err := waitFor(t, drained, "DrainRefreshes"); err != nil {
		t.Fatal(err)
	}
	if fileToken(t, o.RefreshTokenFile) == before {
		t.Fatal("the rotated refresh token was not stored")
	}
	if _, err := NewRefreshGrant(o).Token(context.Background()); err != nil || srv.ReuseDetected() != 0 {
		t.Fatalf("the next start: %v, reuse detected %d", err, srv.ReuseDetected())
	}
}
