package egress

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Shared-store defaults.
const (
	// sharedKeyPrefix namespaces the shared egress keys; the entry's hash
	// is in braces (a Redis Cluster hash tag: one entry's keys, which its
	// scripts touch together, stay in one slot).
	sharedKeyPrefix = "tokengate:egress:"
	sealedPrefix    = "v1:"
	minLockTTL      = 2 * time.Second
	defaultOpTime   = time.Second
)

// SharedOptions make an egress entry share its tokens with the other
// replicas through Redis (token.shared: redis).
type SharedOptions struct {
	// Client reaches the shared server; its timeouts bound each command.
	Client *redis.Client
	// Key is the AES-256-GCM key (32 bytes) every stored token is sealed
	// with: Redis never holds a usable token.
	Key []byte
	// Name is the egress entry's name, for logs; for an
	// authorization-code entry it is also part of the identity (two
	// consents of one client are two entries).
	Name string
	// Token describes the entry's token requests: its URL, client id,
	// scopes and params are its identity, and its timeout bounds the
	// lock (twice the timeout).
	Token TokenOptions
	// AuthorizationCode: the entry's refresh token is shared too.
	AuthorizationCode bool
	// OpTimeout bounds one Redis command made outside a request's own
	// bound (a release, an invalidation). Default 1s.
	OpTimeout time.Duration
	// Logger receives the store's events; never a token or the key.
	Logger *zap.Logger
	// OnEvent is called with "read" (a token taken from Redis),
	// "fetched" (requested here and stored for the others), "fallback"
	// (Redis did not answer: a token of this replica's own) and
	// "invalidated" (an upstream 401 deleted the shared token).
	OnEvent func(outcome string)
}

// SharedStore is one egress entry's state in the shared Redis: the
// sealed access token, the lock a replica holds while it requests one,
// and (authorization code) the sealed refresh token with its generation.
type SharedStore struct {
	c         *redis.Client
	aead      cipher.AEAD
	base      string
	lockTTL   time.Duration
	opTimeout time.Duration
	log       *zap.Logger
	onEvent   func(string)
	authCode  bool
}

// NewSharedStore checks the key and names the entry's keys from its
// canonical identity.
func NewSharedStore(o SharedOptions) (*SharedStore, error) {
	if o.Client == nil {
		return nil, errors.New("shared token store: no Redis client")
	}
	if len(o.Key) != 32 {
		return nil, fmt.Errorf("shared token store: the token key is %d bytes, want 32", len(o.Key))
	}
	block, err := aes.NewCipher(o.Key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = defaultOpTime
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return &SharedStore{
		c: o.Client, aead: aead, base: sharedKeyPrefix + "{" + sharedIdentity(o) + "}",
		lockTTL: max(2*o.Token.timeout(), minLockTTL), opTimeout: o.OpTimeout,
		log: o.Logger.With(zap.String("egress", o.Name)), onEvent: o.OnEvent, authCode: o.AuthorizationCode,
	}, nil
}

// sharedIdentity is the hex SHA-256 of the entry's canonical identity, a
// length-prefixed join: the grant, the Token URL (scheme and host
// lowercased), the client id, the sorted scopes, the sorted params, and
// for an authorization-code entry its name. Two configurations that name
// entries alike with other clients never share; two entries of one
// client with the same scopes do (client credentials: the same token).
func sharedIdentity(o SharedOptions) string {
	h := sha256.New()
	part := func(s string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	part("tokengate egress shared v1")
	tokenURL := o.Token.URL
	if u, err := url.Parse(tokenURL); err == nil {
		u.Scheme, u.Host = strings.ToLower(u.Scheme), strings.ToLower(u.Host)
		tokenURL = u.String()
	}
	grant := "client_credentials"
	if o.AuthorizationCode {
		grant = "authorization_code"
	}
	part(grant)
	part(tokenURL)
	part(o.Token.ClientID)
	scopes := slices.Compact(slices.Sorted(slices.Values(o.Token.Scopes)))
	part(fmt.Sprint(len(scopes)))
	for _, s := range scopes {
		part(s)
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range o.Token.Params {
			if !yield(k) {
				return
			}
		}
	})
	part(fmt.Sprint(len(keys)))
	for _, k := range keys {
		part(k)
		part(o.Token.Params[k])
	}
	if o.AuthorizationCode {
		part(o.Name)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (s *SharedStore) tokenKey() string   { return s.base + ":token" }
func (s *SharedStore) lockKey() string    { return s.base + ":lock" }
func (s *SharedStore) refreshKey() string { return s.base + ":refresh" }

func (s *SharedStore) event(outcome string) {
	if s.onEvent != nil {
		s.onEvent(outcome)
	}
}

// seal encrypts plain with a random nonce; ad (the Redis key, and a
// refresh token's generation) is authenticated, so a value moved to
// another key or generation does not open.
func (s *SharedStore) seal(ad string, plain []byte) string {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return sealedPrefix + base64.RawStdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plain, []byte(ad)))
}

// errUnsealed: a stored value that does not open with this key and key
// name (another token_key, or tampered with).
var errUnsealed = errors.New("a value in the shared store does not decrypt with redis.token_key (another key, or altered)")

func (s *SharedStore) open(ad, v string) ([]byte, error) {
	raw, ok := strings.CutPrefix(v, sealedPrefix)
	if !ok {
		return nil, errUnsealed
	}
	b, err := base64.RawStdEncoding.Strict().DecodeString(raw)
	ns := s.aead.NonceSize()
	if err != nil || len(b) < ns+s.aead.Overhead() {
		return nil, errUnsealed
	}
	plain, err := s.aead.Open(nil, b[:ns], b[ns:], []byte(ad))
	if err != nil {
		return nil, errUnsealed
	}
	return plain, nil
}

// storedToken is an access token as sealed in Redis.
type storedToken struct {
	Value    string `json:"t"`
	Obtained int64  `json:"o"` // unix ms
	Expiry   int64  `json:"e"` // unix ms
	Scope    string `json:"s,omitempty"`
	// Gen is the shared refresh token's generation the token came with
	// (authorization code): each replica that reads the token learns it,
	// so that it knows when Redis goes back to an older one.
	Gen uint64 `json:"g,omitempty"`
}

// loadToken returns the shared access token, nil if none (or if it does
// not open: it is replaced by the next one stored).
func (s *SharedStore) loadToken(ctx context.Context) (*Token, error) {
	v, err := s.c.Get(ctx, s.tokenKey()).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return s.openToken(v), nil
}

func (s *SharedStore) openToken(v string) *Token {
	plain, err := s.open(s.tokenKey(), v)
	var st storedToken
	if err == nil {
		err = json.Unmarshal(plain, &st)
	}
	if err != nil || st.Value == "" || !headerSafe(st.Value) {
		s.log.Warn("the shared access token does not decrypt (another redis.token_key, or altered): requesting a new one", zap.Error(errUnsealed))
		return nil
	}
	return &Token{Value: st.Value, Obtained: time.UnixMilli(st.Obtained), Expiry: time.UnixMilli(st.Expiry), Scope: st.Scope,
		shared: v, fromShared: true, refreshGen: st.Gen}
}

// saveToken stores t sealed, for ttl; it returns the stored value.
func (s *SharedStore) saveToken(ctx context.Context, t *Token, ttl time.Duration) (string, error) {
	plain, err := json.Marshal(storedToken{Value: t.Value, Obtained: t.Obtained.UnixMilli(), Expiry: t.Expiry.UnixMilli(), Scope: t.Scope, Gen: t.refreshGen})
	if err != nil {
		return "", err
	}
	v := s.seal(s.tokenKey(), plain)
	return v, s.c.Set(ctx, s.tokenKey(), v, ttl).Err()
}

// Scripts: each is one atomic step, and running one twice (go-redis
// retries a command whose reply timed out) has the effect of once.
var (
	// lockScript: the owner's lock found again, or a free lock taken → 1.
	lockScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then return 1 end
if v then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`)
	// deleteIfScript: delete KEYS[1] only while it holds ARGV[1] (a lock
	// released by its owner; a token invalidated by whoever saw it fail).
	deleteIfScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)
)

// sharedLock is a held lock: its owner value and when it expires by this
// process's clock (a margin before Redis expires it).
type sharedLock struct {
	owner    string
	deadline time.Time
}

// lock takes the entry's lock, nil when another replica holds it.
func (s *SharedStore) lock(ctx context.Context) (*sharedLock, error) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	l := &sharedLock{owner: hex.EncodeToString(b[:]), deadline: time.Now().Add(s.lockTTL - s.opTimeout)}
	n, err := lockScript.Run(ctx, s.c, []string{s.lockKey()}, l.owner, s.lockTTL.Milliseconds()).Int()
	if err != nil || n != 1 {
		return nil, err
	}
	return l, nil
}

// release frees l (compare-and-delete), bounded by its own timeout.
func (s *SharedStore) release(l *sharedLock) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opTimeout)
	defer cancel()
	if err := deleteIfScript.Run(ctx, s.c, []string{s.lockKey()}, l.owner).Err(); err != nil {
		s.log.Warn("the shared token lock could not be released; it expires by itself", zap.Duration("within", s.lockTTL), zap.Error(err))
	}
}

// waitLock takes the lock, polling until ctx ends (authorize).
func (s *SharedStore) waitLock(ctx context.Context) (*sharedLock, error) {
	for {
		l, err := s.lock(ctx)
		if err != nil || l != nil {
			return l, err
		}
		if err := sleep(ctx, pollEvery); err != nil {
			return nil, fmt.Errorf("waiting for another replica's token request: %w", err)
		}
	}
}

// poll reads the shared token and whether the lock is held, in one
// round trip.
func (s *SharedStore) poll(ctx context.Context) (*Token, bool, error) {
	vs, err := s.c.MGet(ctx, s.tokenKey(), s.lockKey()).Result()
	if err != nil {
		return nil, false, err
	}
	var t *Token
	if v, ok := vs[0].(string); ok {
		t = s.openToken(v)
	}
	return t, vs[1] != nil, nil
}

// dropToken deletes the shared token if it is still v (the one an
// upstream refused); it reports whether it did.
func (s *SharedStore) dropToken(ctx context.Context, v string) (bool, error) {
	n, err := deleteIfScript.Run(ctx, s.c, []string{s.tokenKey()}, v).Int()
	return n == 1, err
}

// pollEvery is how often a replica waiting for another's token looks.
const pollEvery = 50 * time.Millisecond

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
