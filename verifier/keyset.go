package verifier

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// key is one verification key and whether it is still published. A
// principal verified with it keeps the flag, so a cached verification dies
// with the key.
type key struct {
	jwk  jose.JSONWebKey
	gone *atomic.Bool // nil for keys that never leave (the embedded issuer's)
}

// keySource is what the JWT verifier needs from a key set: a
// *RemoteKeySet (a JWKS URL, given or discovered) or a *StaticKeySet.
type keySource interface {
	// keysFor returns the keys that may have signed a token with kid,
	// fetched under the set's policy; errUnknownKey if none may have.
	keysFor(ctx context.Context, kid string) ([]key, error)
	// Refresh refetches the keys now (start-up, SIGHUP).
	Refresh(ctx context.Context) error
	// Run revalidates the keys periodically until ctx ends.
	Run(ctx context.Context)
	// Ready reports whether keys are held. It reads memory only.
	Ready() bool
	// snapshot returns the keys held and when they were fetched (the zero
	// time for keys held in memory), for `tokengate check`.
	snapshot(ctx context.Context) ([]key, time.Time, error)
	// status reports the keys held, fetch times and errors, from memory
	// only (the status page).
	status() KeyStatus
}

var _ keySource = (*StaticKeySet)(nil)

// StaticKeySet holds keys in memory: the embedded token endpoint's own
// public keys, verified in-process.
type StaticKeySet struct {
	byKID map[string][]key
	all   []key
}

// NewStaticKeySet keeps the public parts of keys, after checking them as a
// JWKS is checked: each must be an RSA (at least 2048 bits), EC (P-256,
// P-384, P-521, a point on its curve) or Ed25519 key, not marked for
// encryption, with a public-key "alg" if any, and no two may share a kid.
func NewStaticKeySet(keys []jose.JSONWebKey) (*StaticKeySet, error) {
	if len(keys) == 0 {
		return nil, errors.New("verifier: static key set: no keys")
	}
	s := &StaticKeySet{byKID: map[string][]key{}}
	for i, k := range keys {
		pub := k.Public() // the zero JSONWebKey for a key type go-jose does not know
		if pub.Key == nil {
			pub.Key = k.Key
		}
		if err := checkVerificationKey(pub); err != nil {
			return nil, fmt.Errorf("verifier: static key set: key %d (kid %q): %w", i, k.KeyID, err)
		}
		if _, dup := s.byKID[k.KeyID]; dup {
			return nil, fmt.Errorf("verifier: static key set: kid %q given more than once", k.KeyID)
		}
		kk := key{jwk: pub}
		s.all = append(s.all, kk)
		s.byKID[k.KeyID] = []key{kk}
	}
	return s, nil
}

// checkVerificationKey says why k cannot verify JWS signatures, or nil.
func checkVerificationKey(k jose.JSONWebKey) error {
	if k.Use == "enc" {
		return errors.New("an encryption key")
	}
	if k.Algorithm != "" && !slices.Contains(asymmetricAlgs, jose.SignatureAlgorithm(k.Algorithm)) {
		return fmt.Errorf("alg %q is not a public-key signature algorithm", k.Algorithm)
	}
	switch pk := k.Key.(type) {
	case *rsa.PublicKey:
		if pk == nil || pk.N == nil {
			break
		}
		if pk.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key of %d bits (at least %d required)", pk.N.BitLen(), minRSABits)
		}
		if pk.E < 3 || pk.E%2 == 0 {
			return fmt.Errorf("RSA key with invalid exponent %d", pk.E)
		}
		return nil
	case *ecdsa.PublicKey:
		//lint:ignore SA1019 nil coordinates are checked before ECDH, which would panic on them
		if pk == nil || pk.Curve == nil || pk.X == nil || pk.Y == nil {
			break
		}
		switch pk.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return fmt.Errorf("EC curve %s is not P-256, P-384 or P-521", pk.Curve.Params().Name)
		}
		if _, err := pk.ECDH(); err != nil {
			return fmt.Errorf("invalid EC key: %w", err)
		}
		return nil
	case ed25519.PublicKey:
		if len(pk) == ed25519.PublicKeySize {
			return nil
		}
	}
	return fmt.Errorf("unsupported key type %T", k.Key)
}

func (s *StaticKeySet) keysFor(_ context.Context, kid string) ([]key, error) {
	keys := s.all
	if kid != "" {
		keys = s.byKID[kid]
	}
	if len(keys) == 0 {
		return nil, errUnknownKey
	}
	return keys, nil
}

// Refresh does nothing: keys held in memory have nothing to refetch.
func (s *StaticKeySet) Refresh(context.Context) error { return nil }

// Run returns at once: keys held in memory never change.
func (s *StaticKeySet) Run(context.Context) {}

// Ready is always true.
func (s *StaticKeySet) Ready() bool { return true }

func (s *StaticKeySet) snapshot(context.Context) ([]key, time.Time, error) {
	return s.all, time.Time{}, nil
}
