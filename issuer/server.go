package issuer

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/semaphore"

	"github.com/tokengate/tokengate/ratelimit"
)

// GrantClientCredentials is the only grant served.
const GrantClientCredentials = "client_credentials"

// TokenType is the RFC 9068 JWT header "typ" of issued tokens.
const TokenType = "at+jwt"

// maxSecretLen is bcrypt's limit; longer secrets are refused outright.
const maxSecretLen = 72

// Client is one sender allowed to obtain tokens.
type Client struct {
	ID string
	// SecretHash is a bcrypt hash of the client secret; or
	SecretHash []byte
	// Secret is the plain secret (read from a file), which New hashes at
	// the highest cost of the clients' SecretHash: every known client
	// then costs what an unknown id does.
	Secret []byte
	// Scopes the client may be granted; DefaultScopes when it asks none.
	Scopes, DefaultScopes []string
	// TTL overrides Options.TokenTTL when non-zero.
	TTL time.Duration
}

// Options configures the token endpoint.
type Options struct {
	// Issuer is the "iss" of issued tokens and the base of the metadata.
	Issuer string
	// Path of the token endpoint, e.g. "/oauth2/token".
	Path string
	// Audience is put in "aud".
	Audience string
	// Keys: the first signs, all are published.
	Keys []*Key
	// TokenTTL is the lifetime of issued tokens.
	TokenTTL time.Duration
	// Clients allowed to obtain tokens.
	Clients []Client
	// Rate limits: requests per second and burst, per client id and per
	// client address.
	PerClientRate, PerIPRate   float64
	PerClientBurst, PerIPBurst int
	// MaxConcurrentHashChecks caps simultaneous bcrypt comparisons.
	MaxConcurrentHashChecks int
	// SecretCacheTTL is how long a client's secret, once bcrypt accepted
	// it, is recognised by a keyed hash held in memory (microseconds instead
	// of a bcrypt comparison). Default DefaultSecretCacheTTL; negative: off.
	SecretCacheTTL time.Duration
	// PerIPFailRate and PerIPFailBurst bound failed logins per client
	// address (a bucket taken only by failures, checked before any bcrypt
	// work). Default 1/s, burst 10.
	PerIPFailRate  float64
	PerIPFailBurst int
	// MaxHashWait bounds how long a login waits for a bcrypt slot before
	// it gets 503 temporarily_unavailable (a queue of logins must not hold
	// connections forever). Default DefaultMaxHashWait.
	MaxHashWait time.Duration
	// BodyReadTimeout bounds the arrival of a token request's body (408
	// past it); WriteTimeout bounds writing any answer. Default
	// DefaultTimeout each.
	BodyReadTimeout, WriteTimeout time.Duration
	// ClientIP resolves the caller's address (the per-address buckets
	// count it); default: RemoteAddr's host. An error refuses the request
	// (400 invalid_request with the error's text): the caller is unknown,
	// and no bucket stands in for it.
	ClientIP func(*http.Request) (string, error)
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Shared, when set, counts the per-address, per-client and
	// failed-login buckets in Redis, so that replicas share them (N
	// replicas give a sender or an attacker the budget of one). While
	// Redis fails each replica counts in its own memory (see package
	// ratelimit); nil: in memory only.
	Shared *ratelimit.Redis
	// OnLimitFallback, if set, is called with the bucket family
	// (LimitPerIP, LimitPerClient, LimitIPFailures) of each decision made
	// in memory because Redis failed.
	OnLimitFallback func(limiter string)
	// Logger receives failed logins (client id and address, never the
	// secret) and issued tokens (client id, never the token).
	Logger *zap.Logger
	// OnIssued and OnLoginFailed, if set, count outcomes for metrics.
	OnIssued      func()
	OnLoginFailed func()
}

// Server is the embedded client_credentials token endpoint.
type Server struct {
	o       Options
	clients map[string]*Client
	dummy   []byte // hash compared for unknown clients, so timing says nothing
	perIP   *ratelimit.Keyed
	perCl   *ratelimit.Keyed // failed logins per client id
	ipFails *ratelimit.Keyed // failed logins per address
	known   *remembered      // secrets that passed bcrypt, by keyed hash
	// hashSem caps concurrent bcrypt comparisons so that a flood of bad
	// logins cannot occupy every core.
	hashSem  *semaphore.Weighted
	metaAS   []byte
	metaOIDC []byte
	jwks     []byte
	paths    map[string]http.HandlerFunc
	compare  func(hash, secret []byte) error // bcrypt; counted in tests
}

// New validates the options and prepares the endpoint.
func New(o Options) (*Server, error) {
	if len(o.Keys) == 0 {
		return nil, errors.New("issuer: at least one signing key is required")
	}
	u, err := url.Parse(o.Issuer)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("issuer: invalid issuer URL %q", o.Issuer)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.ClientIP == nil {
		o.ClientIP = remoteHost
	}
	if o.MaxConcurrentHashChecks <= 0 {
		o.MaxConcurrentHashChecks = 2
	}
	if o.SecretCacheTTL == 0 {
		o.SecretCacheTTL = DefaultSecretCacheTTL
	}
	if o.PerIPFailRate <= 0 {
		o.PerIPFailRate = 1
	}
	if o.PerIPFailBurst <= 0 {
		o.PerIPFailBurst = 10
	}
	if o.MaxHashWait <= 0 {
		o.MaxHashWait = DefaultMaxHashWait
	}
	if o.BodyReadTimeout <= 0 {
		o.BodyReadTimeout = DefaultTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultTimeout
	}
	o.Clients = slices.Clone(o.Clients) // hashed secrets are filled in
	s := &Server{
		o: o, clients: map[string]*Client{},
		perIP:   o.limiter(LimitPerIP, o.PerIPRate, o.PerIPBurst),
		perCl:   o.limiter(LimitPerClient, o.PerClientRate, o.PerClientBurst),
		ipFails: o.limiter(LimitIPFailures, o.PerIPFailRate, o.PerIPFailBurst),
		known:   newRemembered(o.SecretCacheTTL),
		hashSem: semaphore.NewWeighted(int64(o.MaxConcurrentHashChecks)),
		compare: bcrypt.CompareHashAndPassword,
	}
	if err := s.hashClients(); err != nil {
		return nil, err
	}
	if err := s.prepareMetadata(u); err != nil {
		return nil, err
	}
	return s, nil
}

func remoteHost(r *http.Request) (string, error) {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h, nil
	}
	return r.RemoteAddr, nil
}

// Paths lists every path this server answers, for the listener's mux.
func (s *Server) Paths() []string {
	out := make([]string, 0, len(s.paths))
	for p := range s.paths {
		out = append(out, p)
	}
	return out
}

// PublicKeys are the published verification keys.
func (s *Server) PublicKeys() []jose.JSONWebKey {
	out := make([]jose.JSONWebKey, 0, len(s.o.Keys))
	for _, k := range s.o.Keys {
		out = append(out, k.Public())
	}
	return out
}

// Algorithms lists the algorithms of the published keys.
func (s *Server) Algorithms() []string {
	var out []string
	for _, k := range s.o.Keys {
		a := string(k.Alg)
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// ServeHTTP answers the token endpoint, the metadata and the JWKS.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, ok := s.paths[r.URL.Path]
	if !ok {
		dropBody(w, r)
		s.startWrite(w)
		http.NotFound(w, r)
		return
	}
	h(w, r)
}

// tokenResponse is RFC 6749 §5.1.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope,omitempty"`
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	ip, ipErr := s.o.ClientIP(r)
	now := s.o.Now()
	if err := s.startBody(w); err != nil {
		s.o.Logger.Error("the token endpoint cannot bound its request bodies: its http.ResponseWriter does not support read deadlines", zap.Error(err))
		dropBody(w, r)
		s.fail(w, &oauthError{status: http.StatusInternalServerError, code: "server_error", desc: "the request cannot be read safely"})
		return
	}
	if ipErr != nil {
		s.o.Logger.Warn("token request refused: its address cannot be resolved", zap.String("peer", r.RemoteAddr), zap.Error(ipErr))
		dropBody(w, r)
		s.fail(w, badRequest(ipErr.Error()))
		return
	}
	if ok, wait := s.perIP.Take(r.Context(), ip); !ok {
		dropBody(w, r)
		s.tooMany(w, wait)
		return
	}
	tr, err := parseTokenRequest(w, r)
	if err == nil {
		err = drain(r.Body)
	}
	if err != nil {
		dropBody(w, r)
		s.fail(w, err)
		return
	}
	if tr.grantType != GrantClientCredentials {
		s.fail(w, &oauthError{status: http.StatusBadRequest, code: "unsupported_grant_type", desc: "only client_credentials is supported"})
		return
	}
	client, err := s.authenticate(r.Context(), tr, ip, now)
	if err != nil {
		if errors.Is(err, errRateLimited) {
			var rl *rateLimitError
			errors.As(err, &rl)
			s.tooMany(w, rl.wait)
			return
		}
		s.fail(w, err)
		return
	}
	scopes, err := grantedScopes(tr.scope, tr.scopeGiven, client.Scopes, client.DefaultScopes)
	if err != nil {
		s.fail(w, err)
		return
	}
	ttl := s.o.TokenTTL
	if client.TTL > 0 {
		ttl = client.TTL
	}
	tok, err := s.mint(client.ID, scopes, now, ttl)
	if err != nil {
		s.o.Logger.Error("signing a token failed", zap.Error(err))
		s.fail(w, &oauthError{status: http.StatusInternalServerError, code: "server_error", desc: "the token could not be signed"})
		return
	}
	if s.o.OnIssued != nil {
		s.o.OnIssued()
	}
	s.o.Logger.Info("token issued", zap.String("client_id", client.ID), zap.String("ip", ip), zap.Strings("scope", scopes), zap.Duration("ttl", ttl))
	noStore(w.Header())
	w.Header().Set("Content-Type", "application/json")
	s.startWrite(w)
	_ = json.NewEncoder(w).Encode(tokenResponse{AccessToken: tok, TokenType: "Bearer", ExpiresIn: int64(ttl / time.Second), Scope: strings.Join(scopes, " ")})
}

func (s *Server) mint(clientID string, scopes []string, now time.Time, ttl time.Duration) (string, error) {
	k := s.o.Keys[0]
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.Alg, Key: k.Signer},
		(&jose.SignerOptions{}).WithType(TokenType).WithHeader("kid", k.ID))
	if err != nil {
		return "", err
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", err
	}
	claims := map[string]any{
		"iss": s.o.Issuer, "sub": clientID, "client_id": clientID, "aud": s.o.Audience,
		"iat": now.Unix(), "exp": now.Add(ttl).Unix(), "jti": hex.EncodeToString(jti[:]),
	}
	if len(scopes) > 0 {
		claims["scope"] = strings.Join(scopes, " ")
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}

func (s *Server) tooMany(w http.ResponseWriter, wait time.Duration) {
	w.Header().Set("Retry-After", ratelimit.RetryAfter(wait))
	s.fail(w, &oauthError{status: http.StatusTooManyRequests, code: "slow_down", desc: "too many token requests; retry later"})
}

// fail writes an RFC 6749 §5.2 error.
func (s *Server) fail(w http.ResponseWriter, err error) {
	var oe *oauthError
	if !errors.As(err, &oe) {
		oe = badRequest("invalid request")
	}
	h := w.Header()
	noStore(h)
	if oe.basic && oe.status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Basic realm="tokengate", charset="UTF-8"`)
	}
	if oe.status == http.StatusMethodNotAllowed {
		h.Set("Allow", http.MethodPost)
	}
	h.Set("Content-Type", "application/json")
	s.startWrite(w)
	w.WriteHeader(oe.status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": oe.code, "error_description": oe.desc})
}

func noStore(h http.Header) {
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
}
