package verifier

import (
	"context"
	"crypto"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/time/rate"

	"github.com/tokengate/tokengate/internal/spans"
)

// MaxJWKSSize bounds a JWKS document.
const MaxJWKSSize = 1 << 20

// defaultMaxKeyAge is how long keys are used before they are refetched.
const defaultMaxKeyAge = time.Minute

// DefaultRefreshCooldown is the refill period of the unknown-kid refetch
// bucket when none (or a negative one) is configured: zero never means
// "refetch for every unknown kid".
const DefaultRefreshCooldown = 30 * time.Second

// refetchBurst is how many unknown-kid refetches may happen back to back
// (then one per cooldown): a key published a moment ago is found on its
// first token even right after another fetch, while a kid flood costs at
// most refetchBurst fetches at once.
const refetchBurst = 3

// minRSABits is the smallest RSA modulus accepted (RFC 7518 §3.3).
const minRSABits = 2048

var (
	// errUnknownKey: no key with the token's kid, even in a JWKS fetched
	// after the token arrived.
	errUnknownKey = errors.New("no key with this kid")
)

// RemoteKeySet is the key set of a JWKS URL, given or (for a JWT issuer
// without one) found by OIDC discovery on first use (discovery.go). Unlike
// go-oidc's RemoteKeySet it refetches only for a kid it does not know
// (never for a bad signature with a known kid): at once while a token
// bucket allows (refetchBurst, then one per cooldown), otherwise in one
// fetch per floodRefetchInterval that every unknown kid waiting meanwhile
// shares (refetch.go). It revalidates the whole set every MaxAge with If-None-Match, marks
// withdrawn keys gone, and tells the JWT verifier when a fetch failed so
// that "identity provider down" becomes 503, not 401.
type RemoteKeySet struct {
	loc     *jwksLocation
	name    string // the issuer's, for spans
	client  *http.Client
	maxAge  time.Duration
	now     func() time.Time
	onFetch func(err error)
	onWarn  func(msg string)
	refetch *rate.Limiter

	mu        sync.RWMutex
	byKID     map[string][]key
	all       []key
	etag      string
	fetched   time.Time // last successful fetch (or 304)
	attempted time.Time // last attempt
	lastErr   error     // last attempt's error, nil after success

	// The fetch schedule (refetch.go).
	inflight    *fetchCall // the fetch running, if any
	due         *fetchCall // an unknown-kid fetch set to start within floodRefetchInterval
	started     uint64     // fetches started so far; fetchCall.seq numbers them
	lastCharged time.Time  // start of the last fetch an unknown kid caused
	spacedUntil time.Time  // no burst fetch before this: a flood fetch ran less than floodRefetchInterval ago
	waiters     int        // unknown-kid tokens waiting for a fetch
	maxWaiters  int        // maxRefetchWaiters (tests lower it)
}

var _ keySource = (*RemoteKeySet)(nil)

// KeySetOptions configures a RemoteKeySet.
type KeySetOptions struct {
	// Client makes the requests; it should have a timeout. Default: a
	// client with a 5s timeout.
	Client *http.Client
	// Cooldown is the refill period of the unknown-kid refetch bucket;
	// zero or negative means DefaultRefreshCooldown. A failed fetch may be
	// retried after min(Cooldown, 5s).
	Cooldown time.Duration
	// MaxAge is how old keys may get before they are refetched (in the
	// background, by Run or by the next token). Default 1m.
	MaxAge time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// OnFetch, if set, is called after every fetch with its result.
	OnFetch func(err error)
	// OnWarn, if set, is told about keys the set ignores (weak RSA keys).
	OnWarn func(msg string)
	// Name is the issuer's configured name, on the spans of its fetches.
	Name string
}

// NewRemoteKeySet returns a key set for url. It fetches nothing until asked.
func NewRemoteKeySet(url string, o KeySetOptions) *RemoteKeySet {
	return newRemoteKeySet(fixedLocation(url), o)
}

// newRemoteKeySet returns a key set fetched from loc, a URL or the result
// of OIDC discovery run on first use.
func newRemoteKeySet(loc *jwksLocation, o KeySetOptions) *RemoteKeySet {
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 5 * time.Second}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxAge == 0 {
		o.MaxAge = defaultMaxKeyAge
	}
	if o.Cooldown <= 0 {
		o.Cooldown = DefaultRefreshCooldown
	}
	return &RemoteKeySet{
		loc: loc, name: o.Name, client: o.Client, maxAge: o.MaxAge, now: o.Now, onFetch: o.OnFetch, onWarn: o.OnWarn,
		refetch: rate.NewLimiter(rate.Every(o.Cooldown), refetchBurst), maxWaiters: maxRefetchWaiters,
	}
}

func (k *RemoteKeySet) lookup(kid string) []key {
	if kid == "" {
		return k.all
	}
	return k.byKID[kid]
}

// Refresh fetches the JWKS now, outside the refetch bucket (start-up,
// SIGHUP, the periodic refresh), after OIDC discovery if it has not
// succeeded yet (tried at once, whenever it last failed). A fetch already
// in flight may have read the set before the reason to refresh (a key
// change, then SIGHUP), so Refresh waits for it and then fetches anew.
func (k *RemoteKeySet) Refresh(ctx context.Context) error {
	if _, err := k.loc.resolve(ctx, true); err != nil {
		return err
	}
	k.mu.Lock()
	earlier := k.inflight
	k.mu.Unlock()
	if earlier != nil {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-earlier.done:
		}
	}
	return wait(ctx, k.fetchNow(ctx))
}

// Run refreshes the keys every MaxAge until ctx ends, so that a withdrawn
// key stops being trusted even while every token is served from the cache.
func (k *RemoteKeySet) Run(ctx context.Context) {
	t := time.NewTicker(k.maxAge)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = k.Refresh(ctx)
		}
	}
}

// Ready reports whether keys were fetched at least once. It reads memory
// only: it never waits for discovery or a fetch in flight.
func (k *RemoteKeySet) Ready() bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return !k.fetched.IsZero()
}

// snapshot returns the keys held and when they were fetched, running
// discovery first if it has not run; it is an error only while no JWKS
// was ever fetched.
func (k *RemoteKeySet) snapshot(ctx context.Context) ([]key, time.Time, error) {
	if _, err := k.loc.resolve(ctx, false); err != nil {
		return nil, time.Time{}, err
	}
	k.mu.RLock()
	all, fetched, err := k.all, k.fetched, k.lastErr
	k.mu.RUnlock()
	switch {
	case !fetched.IsZero():
		err = nil // keys are held; an older failed refetch does not erase them
	case err == nil:
		err = errors.New("the JWKS was never fetched")
	}
	return all, fetched, err
}

func (k *RemoteKeySet) fetch(ctx context.Context) error {
	ctx, span := spans.Start(ctx, "jwks.fetch")
	k.mu.RLock()
	etag := k.etag
	k.mu.RUnlock()
	jwks, newTag, err := k.get(ctx, k.loc.known(), etag)
	var warnings []string
	var parsed []jose.JSONWebKey
	if err == nil && jwks != nil {
		parsed, warnings, err = parseJWKS(jwks)
	}
	err = bound(err) // a status line, or a JWKS URL from a discovery document
	k.mu.Lock()
	k.attempted = k.now()
	k.lastErr = err
	if err == nil {
		k.fetched = k.attempted
		if jwks != nil { // nil: 304 Not Modified, the keys stand
			k.etag = newTag
			k.replace(parsed)
		}
	}
	k.mu.Unlock()
	for _, w := range warnings {
		if k.onWarn != nil {
			k.onWarn(w)
		}
	}
	if k.onFetch != nil {
		k.onFetch(err)
	}
	if span.IsRecording() {
		r := resultFetched
		switch {
		case err != nil:
			r = resultUnavailable
		case jwks == nil:
			r = resultNotModified
		}
		endCall(span, k.name, r)
	}
	return err
}

// replace installs a new key list. A key still published keeps its record
// (and its cached verifications); a withdrawn one is marked gone, which
// ends every cached verification it made. k.mu is held.
func (k *RemoteKeySet) replace(keys []jose.JSONWebKey) {
	old := map[string]key{}
	for _, kk := range k.all {
		old[thumbprint(kk.jwk)] = kk
	}
	all := make([]key, 0, len(keys))
	byKID := make(map[string][]key, len(keys))
	for _, j := range keys {
		tp := thumbprint(j)
		kk, ok := old[tp]
		if !ok || kk.jwk.KeyID != j.KeyID || kk.jwk.Algorithm != j.Algorithm {
			kk = key{jwk: j, gone: new(atomic.Bool)}
		} else {
			delete(old, tp)
		}
		all = append(all, kk)
		byKID[j.KeyID] = append(byKID[j.KeyID], kk)
	}
	for _, kk := range old {
		kk.gone.Store(true)
	}
	k.all, k.byKID = all, byKID
}

func thumbprint(j jose.JSONWebKey) string {
	tp, err := j.Thumbprint(crypto.SHA256)
	if err != nil {
		return j.KeyID
	}
	return string(tp)
}

// get fetches the JWKS; a nil document with no error means 304 Not Modified.
func (k *RemoteKeySet) get(ctx context.Context, url, etag string) ([]byte, string, error) {
	if url == "" {
		return nil, "", errors.New("no JWKS URL: OIDC discovery has not succeeded")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxJWKSSize+1))
	if err != nil {
		return nil, "", fmt.Errorf("reading JWKS: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusNotModified && etag != "":
		return nil, etag, nil
	case resp.StatusCode != http.StatusOK:
		return nil, "", fmt.Errorf("JWKS %s answered %s", url, resp.Status)
	case len(body) > MaxJWKSSize:
		return nil, "", fmt.Errorf("JWKS %s is larger than %d bytes", url, MaxJWKSSize)
	}
	return body, resp.Header.Get("ETag"), nil
}

// parseJWKS decodes a JWK Set, keeping only public signature keys it can
// use and skipping (per RFC 7517 §5) keys of types it does not understand.
// RSA keys under 2048 bits are skipped too, with a warning.
func parseJWKS(body []byte) ([]jose.JSONWebKey, []string, error) {
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, nil, fmt.Errorf("decoding JWKS: %w", err)
	}
	var keys []jose.JSONWebKey
	var warnings []string
	for _, r := range raw.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(r); err != nil {
			continue
		}
		if !k.Valid() || !k.IsPublic() || k.Use == "enc" {
			continue // never a shared secret ("oct") or an encryption key
		}
		if rk, ok := k.Key.(*rsa.PublicKey); ok && rk.N.BitLen() < minRSABits {
			warnings = append(warnings, fmt.Sprintf("JWKS key %q ignored: RSA key of %d bits (at least %d required)", k.KeyID, rk.N.BitLen(), minRSABits))
			continue
		}
		keys = append(keys, k)
	}
	if len(raw.Keys) > 0 && len(keys) == 0 {
		return nil, warnings, errors.New("JWKS holds no usable public signing key")
	}
	return keys, warnings, nil
}
