// Package egresstest runs a vendor-like OAuth 2.0 token endpoint and a
// token-checking upstream over real HTTP, for testing egress: the
// endpoint answers in the shapes vendors really use (expires_in as a
// string, token_type "bearer", a JWT without expires_in, 429 with
// Retry-After, 5xx, slow answers, invalid_client), and the upstream
// refuses every token the endpoint did not issue or that has expired.
package egresstest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Answer overrides one token response. Zero fields take the endpoint's
// normal behaviour.
type Answer struct {
	// Status and Body replace the response entirely when Status is set.
	Status int
	Body   string
	Header http.Header
	// Delay is waited before answering (a slow endpoint).
	Delay time.Duration
	// ExpiresIn, when set, is written verbatim as the expires_in member
	// (e.g. `"3600"` for a string); "-" omits the member.
	ExpiresIn string
	// TokenType replaces "Bearer".
	TokenType string
	// JWT issues the token as an unsigned-looking JWT whose exp is the
	// token's expiry (for "no expires_in, read the JWT" tests).
	JWT bool
}

// Request is what the endpoint saw in one token request.
type Request struct {
	// Shape is "basic", "form", "json" or "multipart": where the
	// credentials and parameters were found.
	Shape               string
	ClientID, Secret    string
	GrantType, Scope    string
	Params              map[string]string
	ContentType, Method string
}

// TokenEndpoint is a token endpoint on a real HTTP server.
type TokenEndpoint struct {
	*httptest.Server
	// ClientID and Secret are the only credentials accepted.
	ClientID, Secret string

	mu       sync.Mutex
	ttl      time.Duration
	script   func(n int) Answer
	issued   map[string]time.Time // token → expiry
	requests []Request
	count    atomic.Int64
}

// NewTokenEndpoint starts an endpoint issuing tokens valid for ttl.
func NewTokenEndpoint(clientID, secret string, ttl time.Duration) *TokenEndpoint {
	e := &TokenEndpoint{ClientID: clientID, Secret: secret, ttl: ttl, issued: map[string]time.Time{}}
	e.Server = httptest.NewServer(http.HandlerFunc(e.serve))
	return e
}

// Script sets how the n-th token request (1-based) is answered.
func (e *TokenEndpoint) Script(f func(n int) Answer) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.script = f
}

// SetTTL changes the lifetime of tokens issued from now on.
func (e *TokenEndpoint) SetTTL(ttl time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ttl = ttl
}

// Count is the number of token requests received.
func (e *TokenEndpoint) Count() int { return int(e.count.Load()) }

// Requests returns what every token request carried.
func (e *TokenEndpoint) Requests() []Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Request(nil), e.requests...)
}

// Check reports whether token was issued here and is unexpired at now.
func (e *TokenEndpoint) Check(token string, now time.Time) error {
	e.mu.Lock()
	exp, ok := e.issued[token]
	e.mu.Unlock()
	switch {
	case !ok:
		return fmt.Errorf("token was not issued by this endpoint")
	case !now.Before(exp):
		return fmt.Errorf("token expired %v ago", now.Sub(exp))
	}
	return nil
}

// Issued returns every token issued so far, expired or not.
func (e *TokenEndpoint) Issued() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, 0, len(e.issued))
	for tok := range e.issued {
		out = append(out, tok)
	}
	return out
}

// Revoke makes token invalid from now on.
func (e *TokenEndpoint) Revoke(token string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.issued, token)
}

func (e *TokenEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	n := int(e.count.Add(1))
	req, err := parse(r)
	e.mu.Lock()
	e.requests = append(e.requests, req)
	script, ttl := e.script, e.ttl
	e.mu.Unlock()
	var a Answer
	if script != nil {
		a = script(n)
	}
	if a.Delay > 0 {
		select {
		case <-time.After(a.Delay):
		case <-r.Context().Done():
			return
		}
	}
	for k, vs := range a.Header {
		w.Header()[k] = vs
	}
	if a.Status != 0 {
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(a.Status)
		_, _ = io.WriteString(w, a.Body)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	switch {
	case err != nil:
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_request", "error_description": err.Error()})
		return
	case req.GrantType != "client_credentials":
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":"unsupported_grant_type"}`)
		return
	case req.ClientID != e.ClientID || req.Secret != e.Secret:
		w.Header().Set("WWW-Authenticate", `Basic realm="token"`)
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":"invalid_client","error_description":"client authentication failed"}`)
		return
	}
	exp := time.Now().Add(ttl)
	tok := randomToken()
	if a.JWT {
		tok = fakeJWT(exp)
	}
	e.mu.Lock()
	e.issued[tok] = exp
	e.mu.Unlock()
	expiresIn := fmt.Sprintf("%d", int(ttl.Seconds()))
	if ttl%time.Second != 0 {
		expiresIn = fmt.Sprintf("%g", ttl.Seconds())
	}
	if a.ExpiresIn != "" {
		expiresIn = a.ExpiresIn
	}
	tt := "Bearer"
	if a.TokenType != "" {
		tt = a.TokenType
	}
	var b strings.Builder
	fmt.Fprintf(&b, `{"access_token":%q,"token_type":%q`, tok, tt)
	if expiresIn != "-" {
		fmt.Fprintf(&b, `,"expires_in":%s`, expiresIn)
	}
	if req.Scope != "" {
		fmt.Fprintf(&b, `,"scope":%q`, req.Scope)
	}
	b.WriteString("}")
	_, _ = io.WriteString(w, b.String())
}

// parse reads the credentials and parameters from any of the four shapes.
func parse(r *http.Request) (Request, error) {
	req := Request{Method: r.Method, ContentType: r.Header.Get("Content-Type"), Params: map[string]string{}}
	if r.Method != http.MethodPost {
		return req, fmt.Errorf("method %s", r.Method)
	}
	mt, _, _ := mime.ParseMediaType(req.ContentType)
	vals := map[string]string{}
	switch mt {
	case "application/json":
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&vals); err != nil {
			return req, fmt.Errorf("json body: %v", err)
		}
		req.Shape = "json"
	case "multipart/form-data":
		if err := r.ParseMultipartForm(1 << 16); err != nil {
			return req, fmt.Errorf("multipart body: %v", err)
		}
		for k := range r.MultipartForm.Value {
			vals[k] = r.MultipartForm.Value[k][0]
		}
		req.Shape = "multipart"
	case "application/x-www-form-urlencoded":
		if err := r.ParseForm(); err != nil {
			return req, fmt.Errorf("form body: %v", err)
		}
		for k := range r.PostForm {
			vals[k] = r.PostForm.Get(k)
		}
		req.Shape = "form"
	default:
		return req, fmt.Errorf("content type %q", req.ContentType)
	}
	if id, secret, ok := r.BasicAuth(); ok {
		req.ClientID, _ = url.QueryUnescape(id)
		req.Secret, _ = url.QueryUnescape(secret)
		if req.Shape == "form" {
			req.Shape = "basic"
		}
	} else {
		req.ClientID, req.Secret = vals["client_id"], vals["client_secret"]
	}
	req.GrantType, req.Scope = vals["grant_type"], vals["scope"]
	for k, v := range vals {
		switch k {
		case "grant_type", "scope", "client_id", "client_secret":
		default:
			req.Params[k] = v
		}
	}
	return req, nil
}

func randomToken() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return "tok_" + hex.EncodeToString(b)
}

// fakeJWT is a JWT-shaped token with exp (signature not meaningful: the
// egress reads exp, the vendor verifies).
func fakeJWT(exp time.Time) string {
	enc := base64.RawURLEncoding
	nonce := make([]byte, 8)
	_, _ = rand.Read(nonce)
	payload := fmt.Sprintf(`{"sub":"client","exp":%.3f,"jti":"%x"}`, float64(exp.UnixNano())/1e9, nonce)
	return enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString(nonce)
}

// Upstream is an API that accepts only unexpired tokens of an endpoint.
type Upstream struct {
	*httptest.Server
	e *TokenEndpoint

	mu       sync.Mutex
	seen     []Seen
	refusals int
}

// Seen is one request the upstream received.
type Seen struct {
	Method, Path, Query, Host string
	Header                    http.Header
	Body                      []byte
	Token                     string
	Err                       error // why the token was refused, nil if accepted
}

// NewUpstream starts an upstream checking tokens against e. It answers
// 401 with an RFC 6750 challenge for a bad token, else 200 with
// {"ok":true}.
func NewUpstream(e *TokenEndpoint) *Upstream {
	u := &Upstream{e: e}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	return u
}

func (u *Upstream) serve(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	body, _ := io.ReadAll(r.Body)
	s := Seen{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Host: r.Host, Header: r.Header.Clone(), Body: body}
	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || tok == "" {
		s.Err = fmt.Errorf("no bearer token (Authorization %q)", auth)
	} else {
		s.Token = tok
		s.Err = u.e.Check(tok, now)
	}
	u.mu.Lock()
	u.seen = append(u.seen, s)
	if s.Err != nil {
		u.refusals++
	}
	u.mu.Unlock()
	if s.Err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		http.Error(w, `{"error":"invalid_token"}`, http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"ok":true}`)
}

// Seen returns every request received so far.
func (u *Upstream) Seen() []Seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]Seen(nil), u.seen...)
}

// Refusals counts requests refused for their token.
func (u *Upstream) Refusals() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.refusals
}
