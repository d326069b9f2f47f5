package egresstest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// AuthServer is an OAuth 2.0 authorization server on a real HTTP server,
// as Deployteq's authorization-code grant behaves: /authorize consents at
// once (or denies) and redirects with ?code=…&state=…; /token exchanges a
// code (single use, expiring, PKCE S256 checked when a challenge was
// sent, redirect_uri compared) and refreshes tokens, rotating the refresh
// token on every use, and revoking the whole family when a used refresh
// token comes back (reuse detection). Clients authenticate with Basic
// credentials or in the form body.
type AuthServer struct {
	*httptest.Server
	// ClientID and Secret are the only client credentials accepted.
	ClientID, Secret string

	deny     atomic.Bool
	rotate   atomic.Bool
	codeTTL  atomic.Int64
	ttl      time.Duration
	refreshN atomic.Int64
	reuse    atomic.Int64
	requests atomic.Int64

	stall atomic.Pointer[stall]
	delay atomic.Int64 // before each refresh answer

	mu       sync.Mutex
	codes    map[string]*grantCode
	refresh  map[string]*refreshState
	access   map[string]time.Time // access token → expiry
	families map[int]bool         // revoked families
	family   int
	lastAuth url.Values // the last /authorize query
}

type grantCode struct {
	challenge, redirect, scope string
	expires                    time.Time
	used                       bool
}

type refreshState struct {
	family int
	used   bool
	scope  string
}

// NewAuthServer starts an authorization server whose access tokens live
// ttl; codes live 60 minutes (Deployteq's figure) unless SetCodeTTL.
func NewAuthServer(clientID, secret string, ttl time.Duration) *AuthServer {
	a := &AuthServer{ClientID: clientID, Secret: secret, ttl: ttl,
		codes: map[string]*grantCode{}, refresh: map[string]*refreshState{}, access: map[string]time.Time{}, families: map[int]bool{}}
	a.rotate.Store(true)
	a.codeTTL.Store(int64(time.Hour))
	mux := http.NewServeMux()
	mux.HandleFunc("/oauth2/auth", a.authorize)
	mux.HandleFunc("/oauth2/token", a.token)
	a.Server = httptest.NewServer(mux)
	return a
}

// AuthorizeURL and TokenURL are the server's endpoints.
func (a *AuthServer) AuthorizeURL() string { return a.URL + "/oauth2/auth" }

// TokenURL is the token endpoint.
func (a *AuthServer) TokenURL() string { return a.URL + "/oauth2/token" }

// SetDeny makes the user refuse consent (?error=access_denied).
func (a *AuthServer) SetDeny(deny bool) { a.deny.Store(deny) }

// SetRotate turns refresh-token rotation on (default) or off.
func (a *AuthServer) SetRotate(on bool) { a.rotate.Store(on) }

// SetRefreshDelay makes every refresh-token answer wait d after the
// refresh was processed (a slow vendor: the rotated token is issued, the
// answer still on its way).
func (a *AuthServer) SetRefreshDelay(d time.Duration) { a.delay.Store(int64(d)) }

// SetCodeTTL changes how long new codes stay valid.
func (a *AuthServer) SetCodeTTL(d time.Duration) { a.codeTTL.Store(int64(d)) }

// Refreshes counts refresh-token grants answered with a token.
func (a *AuthServer) Refreshes() int { return int(a.refreshN.Load()) }

// Requests counts token-endpoint requests, refused ones included.
func (a *AuthServer) Requests() int { return int(a.requests.Load()) }

// ReuseDetected counts refresh tokens presented again after use (each
// revoked its family).
func (a *AuthServer) ReuseDetected() int { return int(a.reuse.Load()) }

// LastAuthorize is the query of the last /authorize request.
func (a *AuthServer) LastAuthorize() url.Values {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastAuth
}

// Valid reports whether token is an unexpired access token of a family
// not revoked.
func (a *AuthServer) Valid(token string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	exp, ok := a.access[token]
	return ok && time.Now().Before(exp)
}

// Issued returns every access and refresh token issued so far.
func (a *AuthServer) Issued() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]string, 0, len(a.access)+len(a.refresh))
	for tok := range a.access {
		out = append(out, tok)
	}
	for tok := range a.refresh {
		out = append(out, tok)
	}
	return out
}

// Revoke revokes every token issued so far (the user withdrew consent).
func (a *AuthServer) Revoke() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.refresh {
		a.families[r.family] = true
	}
	clear(a.access)
}

func (a *AuthServer) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	a.mu.Lock()
	a.lastAuth = q
	a.mu.Unlock()
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || q.Get("client_id") != a.ClientID || q.Get("response_type") != "code" || redirect.Scheme == "" {
		http.Error(w, "bad authorization request", http.StatusBadRequest)
		return
	}
	back := redirect.Query()
	back.Set("state", q.Get("state"))
	if a.deny.Load() {
		back.Set("error", "access_denied")
		back.Set("error_description", "The resource owner denied the request")
	} else {
		code := randomToken()
		ch := ""
		if q.Get("code_challenge_method") == "S256" {
			ch = q.Get("code_challenge")
		}
		a.mu.Lock()
		a.codes[code] = &grantCode{challenge: ch, redirect: q.Get("redirect_uri"), scope: q.Get("scope"),
			expires: time.Now().Add(time.Duration(a.codeTTL.Load()))}
		a.mu.Unlock()
		back.Set("code", code)
	}
	redirect.RawQuery = back.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

// stall holds refresh answers (StallRefreshes).
type stall struct {
	arrived, abandoned, release chan struct{}
	once                        sync.Once
}

// StallRefreshes makes every refresh-token grant from now on be processed
// at once (the old refresh token spent, a rotated one issued) but its
// answer held until release is called: a refresh "at the vendor" while
// the client reloads or shuts down. arrived receives once per held
// refresh; abandoned receives once per held refresh whose client went
// away before the answer (a cancelled request: the rotated token is lost
// to it).
func (a *AuthServer) StallRefreshes() (arrived, abandoned <-chan struct{}, release func()) {
	st := &stall{arrived: make(chan struct{}, 64), abandoned: make(chan struct{}, 64), release: make(chan struct{})}
	a.stall.Store(st)
	return st.arrived, st.abandoned, func() { st.once.Do(func() { close(st.release) }) }
}

func (a *AuthServer) token(w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	a.answer(rec, r)
	if d := time.Duration(a.delay.Load()); d > 0 && r.PostForm.Get("grant_type") == "refresh_token" {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	if st := a.stall.Load(); st != nil && r.PostForm.Get("grant_type") == "refresh_token" {
		select {
		case st.arrived <- struct{}{}:
		default:
		}
		select {
		case <-st.release:
		case <-r.Context().Done():
			select {
			case st.abandoned <- struct{}{}:
			default:
			}
			return
		}
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// answer processes a token request; token sends the answer.
func (a *AuthServer) answer(w http.ResponseWriter, r *http.Request) {
	a.requests.Add(1)
	if err := r.ParseForm(); err != nil || r.Method != http.MethodPost {
		oauthError(w, http.StatusBadRequest, "invalid_request", "POST a form")
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != a.ClientID || secret != a.Secret {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		c := a.codes[r.PostForm.Get("code")]
		switch {
		case c == nil || c.used || time.Now().After(c.expires):
			oauthError(w, http.StatusBadRequest, "invalid_grant", "the authorization code is invalid, expired or already used")
			return
		case c.redirect != r.PostForm.Get("redirect_uri"):
			oauthError(w, http.StatusBadRequest, "invalid_grant", "redirect_uri does not match")
			return
		case c.challenge != "" && s256(r.PostForm.Get("code_verifier")) != c.challenge:
			oauthError(w, http.StatusBadRequest, "invalid_grant", "PKCE verification failed")
			return
		}
		c.used = true
		a.family++
		a.issue(w, a.family, c.scope)
	case "refresh_token":
		rs := a.refresh[r.PostForm.Get("refresh_token")]
		switch {
		case rs == nil || a.families[rs.family]:
			oauthError(w, http.StatusBadRequest, "invalid_grant", "the refresh token is invalid or revoked")
			return
		case rs.used:
			a.reuse.Add(1)
			a.families[rs.family] = true
			oauthError(w, http.StatusBadRequest, "invalid_grant", "refresh token reuse detected; the grant is revoked")
			return
		}
		a.refreshN.Add(1)
		if !a.rotate.Load() {
			a.issueAccess(w, r.PostForm.Get("refresh_token"), rs.scope, false)
			return
		}
		rs.used = true
		a.issue(w, rs.family, rs.scope)
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "")
	}
}

// issue answers with a new access token and a new refresh token of
// family; a.mu is held.
func (a *AuthServer) issue(w http.ResponseWriter, family int, scope string) {
	rt := randomToken()
	a.refresh[rt] = &refreshState{family: family, scope: scope}
	a.issueAccess(w, rt, scope, true)
}

func (a *AuthServer) issueAccess(w http.ResponseWriter, refresh, scope string, withRefresh bool) {
	at := randomToken()
	a.access[at] = time.Now().Add(a.ttl)
	body := map[string]any{"access_token": at, "token_type": "bearer", "expires_in": int(a.ttl.Seconds()), "scope": scope}
	if withRefresh && strings.Contains(" "+scope+" ", " offline_access ") {
		body["refresh_token"] = refresh
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(body)
}

func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}
