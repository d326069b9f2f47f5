package verifier

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"
)

// MaxJWKSSize bounds a JWKS document.
const MaxJWKSSize = 1 << 20

// defaultMaxKeyAge is how long keys are used before a background refresh,
// so a key the issuer withdrew stops being trusted.
const defaultMaxKeyAge = 15 * time.Minute

// errUnknownKey: no key with the token's kid, even after a refetch.
var errUnknownKey = errors.New("no key with this kid")

// RemoteKeySet is the key set of a JWKS URL. Unlike go-oidc's RemoteKeySet
// it fetches only for a kid it does not know (never for a bad signature with
// a known kid), at most once per cooldown, and it tells the JWT verifier
// when a fetch failed so that "identity provider down" becomes 503, not 401.
// go-oidc still verifies every signature, through goOIDCKeySet.
type RemoteKeySet struct {
	url      string
	client   *http.Client
	cooldown time.Duration
	maxAge   time.Duration
	now      func() time.Time
	onFetch  func(err error)

	sf singleflight.Group

	mu        sync.RWMutex
	byKID     map[string][]jose.JSONWebKey
	all       []jose.JSONWebKey
	doc       []byte // the usable keys as JWKS JSON
	gen       atomic.Uint64
	fetched   time.Time // last successful fetch
	attempted time.Time // last attempt
	lastErr   error     // last attempt's error, nil after success
}

var _ keySource = (*RemoteKeySet)(nil)

// KeySetOptions configures a RemoteKeySet.
type KeySetOptions struct {
	// Client makes the requests; it should have a timeout. Default: a
	// client with a 5s timeout.
	Client *http.Client
	// Cooldown is the least time between two fetches caused by unknown
	// kids. A failed fetch may be retried after min(Cooldown, 5s).
	Cooldown time.Duration
	// MaxAge triggers a background refresh of keys older than this.
	// Default 15m.
	MaxAge time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// OnFetch, if set, is called after every fetch with its result.
	OnFetch func(err error)
}

// NewRemoteKeySet returns a key set for url. It fetches nothing until asked.
func NewRemoteKeySet(url string, o KeySetOptions) *RemoteKeySet {
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 5 * time.Second}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxAge == 0 {
		o.MaxAge = defaultMaxKeyAge
	}
	return &RemoteKeySet{url: url, client: o.Client, cooldown: o.Cooldown, maxAge: o.MaxAge, now: o.Now, onFetch: o.OnFetch}
}

// keySource is what the JWT verifier needs from a key set: the keys for a
// kid (fetching under the set's policy), and the current set as JWKS JSON
// for go-oidc, which verifies the signature itself.
type keySource interface {
	keysFor(ctx context.Context, kid string) ([]jose.JSONWebKey, error)
	jwks() []byte
	// generation changes whenever the keys do, so that go-oidc's copy of
	// them is replaced and a withdrawn key is never trusted again.
	generation() uint64
}

// StaticKeySet holds keys in memory: the embedded token endpoint's own
// public keys, verified in-process.
type StaticKeySet struct {
	byKID map[string][]jose.JSONWebKey
	all   []jose.JSONWebKey
	doc   []byte
}

// NewStaticKeySet keeps the public parts of keys.
func NewStaticKeySet(keys []jose.JSONWebKey) *StaticKeySet {
	s := &StaticKeySet{byKID: map[string][]jose.JSONWebKey{}}
	for _, k := range keys {
		k = k.Public()
		s.all = append(s.all, k)
		s.byKID[k.KeyID] = append(s.byKID[k.KeyID], k)
	}
	s.doc = marshalJWKS(s.all)
	return s
}

func (s *StaticKeySet) keysFor(_ context.Context, kid string) ([]jose.JSONWebKey, error) {
	keys := s.all
	if kid != "" {
		keys = s.byKID[kid]
	}
	if len(keys) == 0 {
		return nil, errUnknownKey
	}
	return keys, nil
}

func (s *StaticKeySet) jwks() []byte { return s.doc }

func (s *StaticKeySet) generation() uint64 { return 0 }

func marshalJWKS(keys []jose.JSONWebKey) []byte {
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		return []byte(`{"keys":[]}`)
	}
	return b
}

// localJWKS serves a keySource's JWKS to go-oidc's RemoteKeySet without any
// network: go-oidc then verifies with the token it already parsed, while
// when (and whether) the identity provider is asked stays our decision.
type localJWKS struct{ src keySource }

func (l localJWKS) RoundTrip(r *http.Request) (*http.Response, error) {
	body := l.src.jwks()
	return &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)), Request: r,
	}, nil
}

// goOIDCKeySet is go-oidc's own key set over a keySource.
func goOIDCKeySet(name string, src keySource) oidc.KeySet {
	ctx := oidc.ClientContext(context.Background(), &http.Client{Transport: localJWKS{src}})
	return oidc.NewRemoteKeySet(ctx, "http://tokengate.invalid/jwks/"+name)
}

// keysFor returns the keys that may have signed a token with kid, fetching
// the JWKS when the kid is unknown and the cooldown allows it.
func (k *RemoteKeySet) keysFor(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	k.mu.RLock()
	keys, lastErr, fetched, attempted := k.lookup(kid), k.lastErr, k.fetched, k.attempted
	k.mu.RUnlock()
	now := k.now()
	if len(keys) > 0 {
		if !fetched.IsZero() && now.Sub(fetched) > k.maxAge && now.Sub(attempted) > min(k.maxAge, 5*time.Second) {
			k.sf.DoChan("refresh", k.refreshStale(ctx))
		}
		return keys, nil
	}
	if wait := k.wait(lastErr); !attempted.IsZero() && now.Sub(attempted) < wait {
		if lastErr != nil {
			return nil, fmt.Errorf("fetching keys: %w (retrying after %v)", lastErr, wait)
		}
		return nil, errUnknownKey
	}
	ch := k.sf.DoChan("refresh", k.maybeFetch(ctx))
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("fetching keys: %w", ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			return nil, fmt.Errorf("fetching keys: %w", r.Err)
		}
	}
	k.mu.RLock()
	keys = k.lookup(kid)
	k.mu.RUnlock()
	if len(keys) == 0 {
		return nil, errUnknownKey
	}
	return keys, nil
}

// wait is the least time between two fetch attempts: the cooldown, or less
// after a failure so that recovery is quick.
func (k *RemoteKeySet) wait(lastErr error) time.Duration {
	if lastErr != nil {
		return min(k.cooldown, 5*time.Second)
	}
	return k.cooldown
}

// maybeFetch returns a singleflight function that fetches unless another
// fetch finished within the cooldown (a caller that checked before that
// fetch completed must not cause a second one).
func (k *RemoteKeySet) maybeFetch(ctx context.Context) func() (any, error) {
	return func() (any, error) {
		k.mu.RLock()
		attempted, lastErr := k.attempted, k.lastErr
		k.mu.RUnlock()
		if !attempted.IsZero() && k.now().Sub(attempted) < k.wait(lastErr) {
			return nil, lastErr
		}
		return nil, k.fetch(context.WithoutCancel(ctx))
	}
}

// refreshStale returns a singleflight function that refetches keys older
// than the refresh interval (at most once per interval, whatever the kids).
func (k *RemoteKeySet) refreshStale(ctx context.Context) func() (any, error) {
	return func() (any, error) {
		k.mu.RLock()
		fetched, attempted := k.fetched, k.attempted
		k.mu.RUnlock()
		now := k.now()
		if now.Sub(fetched) <= k.maxAge || now.Sub(attempted) <= min(k.maxAge, 5*time.Second) {
			return nil, nil
		}
		return nil, k.fetch(context.WithoutCancel(ctx))
	}
}

func (k *RemoteKeySet) lookup(kid string) []jose.JSONWebKey {
	if kid == "" {
		return k.all
	}
	return k.byKID[kid]
}

func (k *RemoteKeySet) jwks() []byte {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.doc == nil {
		return []byte(`{"keys":[]}`)
	}
	return k.doc
}

func (k *RemoteKeySet) generation() uint64 { return k.gen.Load() }

// Refresh fetches the JWKS now, ignoring the cooldown.
func (k *RemoteKeySet) Refresh(ctx context.Context) error {
	ch := k.sf.DoChan("refresh", func() (any, error) { return nil, k.fetch(context.WithoutCancel(ctx)) })
	select {
	case <-ctx.Done():
		return ctx.Err()
	case r := <-ch:
		return r.Err
	}
}

// Ready reports whether keys were fetched at least once.
func (k *RemoteKeySet) Ready() bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return !k.fetched.IsZero()
}

func (k *RemoteKeySet) fetch(ctx context.Context) error {
	keys, err := k.get(ctx)
	k.mu.Lock()
	k.attempted = k.now()
	k.lastErr = err
	if err == nil {
		k.fetched = k.attempted
		doc := marshalJWKS(keys)
		if !bytes.Equal(doc, k.doc) {
			k.gen.Add(1)
		}
		k.all = keys
		k.doc = doc
		k.byKID = make(map[string][]jose.JSONWebKey, len(keys))
		for _, key := range keys {
			k.byKID[key.KeyID] = append(k.byKID[key.KeyID], key)
		}
	}
	k.mu.Unlock()
	if k.onFetch != nil {
		k.onFetch(err)
	}
	return err
}

func (k *RemoteKeySet) get(ctx context.Context) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxJWKSSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading JWKS: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("JWKS %s answered %s", k.url, resp.Status)
	}
	if len(body) > MaxJWKSSize {
		return nil, fmt.Errorf("JWKS %s is larger than %d bytes", k.url, MaxJWKSSize)
	}
	return ParseJWKS(body)
}

// ParseJWKS decodes a JWK Set, keeping only public signature keys it can
// use and skipping (per RFC 7517 §5) keys of types it does not understand.
func ParseJWKS(body []byte) ([]jose.JSONWebKey, error) {
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("decoding JWKS: %w", err)
	}
	var keys []jose.JSONWebKey
	for _, r := range raw.Keys {
		var key jose.JSONWebKey
		if err := key.UnmarshalJSON(r); err != nil {
			continue
		}
		if !key.Valid() || !key.IsPublic() || key.Use == "enc" {
			continue // never a shared secret ("oct") or an encryption key
		}
		keys = append(keys, key)
	}
	if len(raw.Keys) > 0 && len(keys) == 0 {
		return nil, errors.New("JWKS holds no usable public signing key")
	}
	return keys, nil
}
