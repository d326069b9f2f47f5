package egress

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/oauth2"
)

// Token error codes of the authorization-code grant (besides RFC 6749's).
const (
	// errorAuthorizationRequired: there is no usable refresh token; an
	// operator must run `tokengate authorize NAME`.
	errorAuthorizationRequired = "authorization_required"
	// errorNotStored: the server rotated the refresh token and the new one
	// could not be written; no access token is used until it is.
	errorNotStored = "refresh_token_not_stored"
)

// AuthCodeOptions describe an egress entry that acts for a user: one
// consent through `tokengate authorize` (authorization code with PKCE),
// then access tokens from its refresh token.
type AuthCodeOptions struct {
	// Name is the egress entry's name, for messages.
	Name string
	// Token holds the Token URL, the client credentials, the client
	// authentication (AuthBasic or AuthForm), the scopes and the client.
	Token TokenOptions
	// AuthorizeURL is where the user consents; RedirectURI is the
	// registered redirect URL.
	AuthorizeURL, RedirectURI string
	// RefreshTokenFile holds the refresh token (mode 0600, replaced by
	// write-to-temp and rename). Symbolic links are resolved when a grant
	// is made (at start and at each reload): the file they lead to is
	// read, replaced and locked.
	RefreshTokenFile string
	// WriteFile stores a refresh token (given the resolved path); default
	// WriteFileAtomic.
	WriteFile func(path string, data []byte) error
	// Shared, when set, keeps the refresh token in Redis for every
	// replica (the same store as the Source's SourceOptions.Shared):
	// each refresh runs under its lock, and RefreshTokenFile, optional
	// then, keeps a copy and seeds an empty store.
	Shared *SharedStore
}

// refreshState is the process-wide state of the entry's refresh token:
// its file's, or without a file its shared store's.
func (o AuthCodeOptions) refreshState() *refreshFile {
	if o.RefreshTokenFile == "" && o.Shared != nil {
		return refreshFileFor("", "shared:"+o.Shared.base)
	}
	return refreshFileFor(o.RefreshTokenFile, "")
}

func (o AuthCodeOptions) config() *oauth2.Config {
	style := oauth2.AuthStyleInHeader
	if o.Token.Auth == AuthForm {
		style = oauth2.AuthStyleInParams
	}
	return &oauth2.Config{
		ClientID: o.Token.ClientID, ClientSecret: o.Token.ClientSecret, RedirectURL: o.RedirectURI, Scopes: o.Token.Scopes,
		Endpoint: oauth2.Endpoint{AuthURL: o.AuthorizeURL, TokenURL: o.Token.URL, AuthStyle: style},
	}
}

// client carries the token-request client (redirects refused) for
// x/oauth2.
func (o AuthCodeOptions) client(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, o.Token.httpClient(nil))
}

// write stores data in f, the resolved RefreshTokenFile: a symbolic link
// stays a link (a rename over the link's own name would replace it with a
// file that the other spellings of the path no longer see).
func (o AuthCodeOptions) write(f *refreshFile, data string) error {
	w := o.WriteFile
	if w == nil {
		w = WriteFileAtomic
	}
	return w(f.path, []byte(data+"\n"))
}

// WriteFileAtomic writes data to path with mode 0600 through a temporary
// file in the same directory, synced and renamed over path: a reader sees
// the old content or the new, never a part.
func WriteFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // the rename itself survives a crash
		_ = d.Close()
	}
	return nil
}

// Authorization is one run of the consent flow: its state and PKCE
// verifier (RFC 7636, S256), which never leave this process except as
// the challenge.
type Authorization struct {
	o        AuthCodeOptions
	state    string
	verifier string
	// URL is the address the user opens.
	URL string
}

// ErrStateMismatch: the redirect's state is missing or not this run's
// (another run, or a forged redirect); nothing is exchanged or stored.
var ErrStateMismatch = errors.New("the state in the redirect does not match this run's: refused, nothing stored")

// DeniedError is the authorization server's ?error=… redirect.
type DeniedError struct {
	Code, Description string
}

func (e *DeniedError) Error() string {
	if e.Code == "access_denied" {
		return "the user did not consent (access_denied): nothing stored; run authorize again to retry"
	}
	msg := "the authorization server answered " + clean(e.Code, maxCodeLen)
	if e.Description != "" {
		msg += ": " + clean(e.Description, maxDescriptionLen)
	}
	return msg + "; nothing stored"
}

// NewAuthorization starts a run: a random state, a PKCE verifier, and
// the authorization URL (response_type=code, client_id, redirect_uri,
// scope, state, code_challenge, code_challenge_method=S256).
func NewAuthorization(o AuthCodeOptions) (*Authorization, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	a := &Authorization{o: o, state: base64.RawURLEncoding.EncodeToString(b[:]), verifier: oauth2.GenerateVerifier()}
	a.URL = o.config().AuthCodeURL(a.state, oauth2.S256ChallengeOption(a.verifier))
	return a, nil
}

// Code reads the redirect: a full URL, its query, or a bare code. The
// state is checked when present (a bare code carries none: bare says
// so); an error parameter becomes a DeniedError.
func (a *Authorization) Code(pasted string) (code string, bare bool, err error) {
	s := strings.TrimSpace(pasted)
	if s == "" {
		return "", false, errors.New("nothing pasted")
	}
	var q url.Values
	switch {
	case strings.Contains(s, "://"):
		u, err := url.Parse(s)
		if err != nil {
			return "", false, fmt.Errorf("not a URL: %w", err)
		}
		q = u.Query()
	case strings.Contains(s, "="):
		if q, err = url.ParseQuery(strings.TrimPrefix(s, "?")); err != nil {
			return "", false, err
		}
	default:
		return s, true, nil
	}
	return a.fromQuery(q)
}

// FromRedirect checks a redirect's query (the loopback listener's).
func (a *Authorization) FromRedirect(q url.Values) (string, error) {
	code, _, err := a.fromQuery(q)
	return code, err
}

func (a *Authorization) fromQuery(q url.Values) (string, bool, error) {
	// The state is this run's secret: compared in constant time.
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(a.state)) != 1 {
		return "", false, ErrStateMismatch
	}
	if e := q.Get("error"); e != "" {
		return "", false, &DeniedError{Code: e, Description: q.Get("error_description")}
	}
	code := q.Get("code")
	if code == "" {
		return "", false, errors.New("the redirect carries no code")
	}
	return code, false, nil
}

// Granted is what an exchange obtained, without the tokens.
type Granted struct {
	// Scope is the granted scope (the requested one if the answer named
	// none); Expiry is the first access token's.
	Scope  string
	Expiry time.Time
}

// Exchange trades code (with the PKCE verifier and the entry's client
// authentication) for tokens and stores the refresh token. An answer
// without a refresh token is an error: the entry could not renew.
func (a *Authorization) Exchange(ctx context.Context, code string) (*Granted, error) {
	r := a.o.Token.redactor(code, a.verifier)
	tok, err := a.o.config().Exchange(a.o.client(ctx), code, oauth2.VerifierOption(a.verifier))
	if err != nil {
		te := classify(err, r)
		if te.Code == "invalid_grant" {
			te.Description += " (a code is single-use and short-lived — Deployteq: 60 minutes — and must come from this run; run authorize again)"
		}
		return nil, r.seal(te)
	}
	r = r.withTokens(tok.AccessToken, tok.RefreshToken)
	if tok.RefreshToken == "" {
		return nil, errors.New("the server granted no refresh token: ask for the offline_access scope (Deployteq) or whatever the server needs for one; nothing stored")
	}
	if a.o.Shared != nil {
		if err := a.storeShared(ctx, tok.RefreshToken); err != nil {
			return nil, err
		}
	} else if err := a.store(ctx, tok.RefreshToken); err != nil {
		return nil, fmt.Errorf("storing the refresh token in %s: %w", a.o.RefreshTokenFile, err)
	}
	g := &Granted{Scope: strings.Join(a.o.Token.Scopes, " "), Expiry: tok.Expiry}
	if s, ok := tok.Extra("scope").(string); ok && s != "" {
		g.Scope = r.text(s, maxScopeLen)
	}
	return g, nil
}

// store writes a new consent's refresh token once no refresh of the file
// is in flight (a running gate's refresh would otherwise store its
// rotated token over it afterwards); a token kept in memory by a failed
// write belongs to the old consent and is dropped.
func (a *Authorization) store(ctx context.Context, rt string) error {
	f := a.o.refreshState()
	release, err := f.lock(ctx)
	if err != nil {
		return err
	}
	defer release()
	if err := a.o.write(f, rt); err != nil {
		return err
	}
	f.pending = ""
	return f.consentedUnshared(rt)
}

// RefreshGrant obtains access tokens with the stored refresh token
// (grant_type=refresh_token). One refresh of a file runs at a time in the
// process, whichever grant makes it (a reload makes a new grant for the
// same file), and across processes where flock(2) exists: the next one
// reads the token the previous one stored. A refresh that reached the
// server always runs to its end, within the token timeout, even when
// its Source is closed (a reload, SIGTERM): the server has rotated the
// refresh token, and the new one must be stored. A rotated refresh token
// is written before the access token that came with it is used; if the
// write fails the new refresh token is kept in memory, the write retried,
// and no access token is returned meanwhile. A refresh token the server
// refused (invalid_grant) is never sent again: until the file changes (an
// operator ran `tokengate authorize`), every attempt fails at once,
// without a request.
type RefreshGrant struct {
	o     AuthCodeOptions
	file  *refreshFile
	epoch uint64      // DrainRefreshes calls before it was made
	log   *zap.Logger // its Source's (NewSource sets it)
}

// NewRefreshGrant makes the grant of one egress entry.
func NewRefreshGrant(o AuthCodeOptions) *RefreshGrant {
	refreshFiles.Lock()
	epoch := refreshFiles.epoch
	refreshFiles.Unlock()
	return &RefreshGrant{o: o, file: o.refreshState(), epoch: epoch, log: zap.NewNop()}
}

// useLogger gives the grant its Source's logger (for DrainRefreshes).
func (g *RefreshGrant) useLogger(l *zap.Logger) { g.log = l }

// Token makes one refresh request (no retries). ctx bounds the wait for
// another refresh of the same file; once this one starts, ctx's
// cancellation no longer stops it (only the token timeout does).
func (g *RefreshGrant) Token(ctx context.Context) (*Token, error) {
	if st := g.o.Shared; st != nil {
		// A Source wraps a shared grant and holds the lock when it calls
		// tokenLocked; a caller of its own takes the lock here.
		l, err := st.waitLock(ctx)
		if err != nil {
			return nil, &notRequested{err}
		}
		defer st.release(l)
		return g.tokenLocked(ctx, l)
	}
	release, err := g.file.lock(ctx)
	if err != nil {
		return nil, fmt.Errorf("waiting for another refresh of %s: %w", g.o.RefreshTokenFile, err)
	}
	defer release()
	if err := ctx.Err(); err != nil {
		return nil, err // stopped while waiting: nothing was sent
	}
	timeout := g.o.Token.timeout()
	f := g.file
	run, err := f.begin(g.epoch, g.log, timeout)
	if err != nil {
		return nil, err
	}
	defer f.end(run)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	b, err := os.ReadFile(f.path)
	rt := strings.TrimSpace(string(b))
	if f.pending != "" {
		if err == nil && rt != "" && rt != f.spent {
			f.pending = "" // a new consent replaced the file: the kept token belongs to the old one
		} else {
			if err := g.o.write(f, f.pending); err != nil {
				f.storeErr = err
				return nil, g.notStored(err)
			}
			rt, err, f.pending = f.pending, nil, ""
		}
	}
	switch {
	case err != nil || rt == "":
		return nil, &TokenError{Code: errorAuthorizationRequired, Status: http.StatusUnauthorized,
			Description: fmt.Sprintf("no refresh token in %s: run `tokengate authorize %s --config FILE`", g.o.RefreshTokenFile, g.o.Name)}
	case rt == f.refused:
		return nil, &TokenError{Code: errorAuthorizationRequired, Status: http.StatusUnauthorized,
			Description: fmt.Sprintf("the refresh token in %s was refused (invalid_grant: revoked or expired): run `tokengate authorize %s --config FILE`", g.o.RefreshTokenFile, g.o.Name)}
	case f.knowledge(g.log).spent(rt):
		return nil, &TokenError{Code: errorAuthorizationRequired, Status: http.StatusUnauthorized,
			Description: fmt.Sprintf("the refresh token in %s is one this gate already spent (sent again, a vendor with reuse detection revokes the grant): run `tokengate authorize %s --config FILE`", g.o.RefreshTokenFile, g.o.Name)}
	}
	r := g.o.Token.redactor(append(heldFrom(ctx), rt, f.prev)...)
	ts := g.o.config().TokenSource(g.o.client(ctx), &oauth2.Token{RefreshToken: rt})
	sent := time.Now()
	tok, err := ts.Token()
	if err != nil {
		te := classify(err, r)
		if te.Code == "invalid_grant" {
			f.refused = rt
			te.Description += fmt.Sprintf("; the refresh token was refused: run `tokengate authorize %s --config FILE`", g.o.Name)
		}
		return nil, r.seal(te)
	}
	if tok.RefreshToken != "" && tok.RefreshToken != rt {
		f.prev = rt
		g.rotatedUnshared(rt, tok.RefreshToken)
		if err := g.o.write(f, tok.RefreshToken); err != nil {
			f.pending, f.spent, f.storeErr = tok.RefreshToken, rt, err
			f.store = func(s string) error { return g.o.write(f, s) }
			return nil, r.withTokens(tok.RefreshToken).seal(g.notStored(err))
		}
	}
	t, err := accept(tok, sent, g.o.Token, r)
	return t, r.seal(err)
}

func (g *RefreshGrant) notStored(err error) *TokenError {
	return &TokenError{Code: errorNotStored, Err: err, Description: clean(fmt.Sprintf(
		"the server rotated the refresh token and %s could not be written (%v): the new one is kept in memory and the write retried; no access token is used until it is stored", g.o.RefreshTokenFile, err), 400)}
}
