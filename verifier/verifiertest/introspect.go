package verifiertest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Introspector is an RFC 7662 endpoint on loopback. It authenticates its
// caller (Basic or form), answers from a table of tokens, and counts calls.
type Introspector struct {
	Server       *httptest.Server
	ClientID     string
	ClientSecret string

	mu           sync.Mutex
	tokens       map[string]map[string]any
	raw          map[string]string
	calls        atomic.Int64
	status       atomic.Int32 // non-zero: answer with this status
	delay        atomic.Int64
	seen         atomic.Value // last form, for assertions
	noClientAuth atomic.Bool
}

// NewIntrospector starts an endpoint that accepts client "tokengate" with
// secret "s3cr:et/+" (characters that need RFC 6749 form-encoding).
func NewIntrospector() *Introspector {
	in := &Introspector{ClientID: "tokengate", ClientSecret: "s3cr:et/+", tokens: map[string]map[string]any{}, raw: map[string]string{}}
	in.Server = httptest.NewServer(http.HandlerFunc(in.serve))
	return in
}

// Close stops the server.
func (in *Introspector) Close() { in.Server.Close() }

// URL of the endpoint.
func (in *Introspector) URL() string { return in.Server.URL + "/introspect" }

// Add makes token active with the given claims ("active" is added).
func (in *Introspector) Add(token string, claims map[string]any) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.tokens[token] = claims
}

// AddRaw makes the endpoint answer body, exactly as given, for token.
func (in *Introspector) AddRaw(token, body string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.raw[token] = body
}

// ActiveClaims returns typical claims for an active token.
func ActiveClaims(scope string, ttl time.Duration) map[string]any {
	return map[string]any{
		"scope": scope, "client_id": "partner", "sub": "partner",
		"exp": time.Now().Add(ttl).Unix(), "iss": "https://partner.example",
		"aud": "https://hooks.example.com",
	}
}

// Calls counts introspection requests.
func (in *Introspector) Calls() int64 { return in.calls.Load() }

// SetStatus makes every answer this status (0: normal answers).
func (in *Introspector) SetStatus(code int) { in.status.Store(int32(code)) }

// SetDelay slows every answer.
func (in *Introspector) SetDelay(d time.Duration) { in.delay.Store(int64(d)) }

// LastForm is the last request's form (including client credentials when
// sent in the body).
func (in *Introspector) LastForm() url.Values {
	v, _ := in.seen.Load().(url.Values)
	return v
}

func (in *Introspector) serve(w http.ResponseWriter, r *http.Request) {
	in.calls.Add(1)
	if d := time.Duration(in.delay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	if code := in.status.Load(); code != 0 {
		http.Error(w, "failing", int(code))
		return
	}
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	in.seen.Store(r.PostForm)
	_, _, basic := r.BasicAuth()
	if in.noClientAuth.Load() {
		// Like an admin-port endpoint that takes no credentials and
		// refuses what it does not expect.
		if basic || r.PostForm.Has("client_id") || r.PostForm.Has("client_secret") {
			http.Error(w, `{"error":"invalid_request","error_description":"unexpected client credentials"}`, http.StatusBadRequest)
			return
		}
	} else if !in.authenticated(r) {
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
		return
	}
	in.answer(w, r)
}

// SetNoClientAuth makes the endpoint take no client credentials and
// refuse requests that carry any (ORY Hydra's admin introspection).
func (in *Introspector) SetNoClientAuth(on bool) { in.noClientAuth.Store(on) }

func (in *Introspector) authenticated(r *http.Request) bool {
	id, secret, ok := r.BasicAuth()
	if ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	return id == in.ClientID && secret == in.ClientSecret
}

func (in *Introspector) answer(w http.ResponseWriter, r *http.Request) {
	in.mu.Lock()
	claims, ok := in.tokens[r.PostForm.Get("token")]
	raw, isRaw := in.raw[r.PostForm.Get("token")]
	in.mu.Unlock()
	if isRaw {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, raw)
		return
	}
	out := map[string]any{"active": false}
	if ok {
		out = map[string]any{"active": true}
		for k, v := range claims {
			out[k] = v
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}
