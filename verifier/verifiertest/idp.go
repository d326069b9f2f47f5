// Package verifiertest runs real identity providers on loopback for tests and
// benchmarks: an OIDC issuer with discovery and a JWKS of real RSA and EC
// keys, and an RFC 7662 introspection endpoint. Nothing here is mocked:
// tokens are signed with go-jose and served over HTTP.
package verifiertest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Key is a signing key with its kid and algorithm.
type Key struct {
	ID      string
	Alg     jose.SignatureAlgorithm
	Private crypto.Signer
}

// Public returns the public JWK.
func (k *Key) Public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.Private.Public(), KeyID: k.ID, Algorithm: string(k.Alg), Use: "sig"}
}

// NewKey makes a fresh RS256 (2048-bit) or ES256 key.
func NewKey(alg jose.SignatureAlgorithm) *Key {
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.RS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		panic("testidp: unsupported alg " + string(alg))
	}
	if err != nil {
		panic(err)
	}
	var id [6]byte
	_, _ = rand.Read(id[:])
	return &Key{ID: fmt.Sprintf("%s-%x", alg, id), Alg: alg, Private: priv}
}

// IdP is an OIDC issuer on loopback.
type IdP struct {
	Server *httptest.Server
	mux    *http.ServeMux
	url    string

	mu          sync.Mutex
	signer      *Key
	published   []*Key
	down        atomic.Bool
	delay       atomic.Int64
	jwksHits    atomic.Int64
	notModified atomic.Int64
	discHits    atomic.Int64
}

// New starts an issuer with one RS256 and one ES256 key published; the
// RS256 key signs.
func New() *IdP {
	rs, es := NewKey(jose.RS256), NewKey(jose.ES256)
	i := &IdP{signer: rs, published: []*Key{rs, es}}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", i.discovery)
	mux.HandleFunc("/jwks", i.jwks)
	i.mux = mux
	i.Server = httptest.NewServer(mux)
	i.url = i.Server.URL
	return i
}

// Restart serves again on the same address after Close (connections are
// refused in between).
func (i *IdP) Restart() error {
	addr := strings.TrimPrefix(i.url, "http://")
	var ln net.Listener
	var err error
	for range 50 { // the port is free again at once on Linux; retry briefly elsewhere
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	srv := httptest.NewUnstartedServer(i.mux)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	i.Server = srv
	return nil
}

// Close stops the server; Restart brings it back on the same address.
func (i *IdP) Close() { i.Server.Close() }

// Issuer is the issuer URL (also the "iss" of minted tokens).
func (i *IdP) Issuer() string { return i.url }

// JWKSURL is the key set's URL.
func (i *IdP) JWKSURL() string { return i.url + "/jwks" }

// SetDown makes discovery and JWKS answer 503 (true) or work again.
func (i *IdP) SetDown(down bool) { i.down.Store(down) }

// SetDelay slows every answer.
func (i *IdP) SetDelay(d time.Duration) { i.delay.Store(int64(d)) }

// JWKSFetches counts JWKS requests served (including failed ones).
func (i *IdP) JWKSFetches() int64 { return i.jwksHits.Load() }

// JWKSNotModified counts JWKS requests answered 304 (If-None-Match).
func (i *IdP) JWKSNotModified() int64 { return i.notModified.Load() }

// Keys returns the published keys; the signer is among them.
func (i *IdP) Keys() []*Key {
	i.mu.Lock()
	defer i.mu.Unlock()
	return append([]*Key(nil), i.published...)
}

// Signer returns the key that signs new tokens.
func (i *IdP) Signer() *Key {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.signer
}

// Rotate makes a new key of alg the signer and publishes it; with retire,
// every older key is withdrawn.
func (i *IdP) Rotate(alg jose.SignatureAlgorithm, retire bool) *Key {
	k := NewKey(alg)
	i.mu.Lock()
	defer i.mu.Unlock()
	i.signer = k
	if retire {
		i.published = nil
	}
	i.published = append(i.published, k)
	return k
}

// UseSigner signs with k from now on (k should be published).
func (i *IdP) UseSigner(k *Key) {
	i.mu.Lock()
	i.signer = k
	i.mu.Unlock()
}

func (i *IdP) wait() bool {
	if d := time.Duration(i.delay.Load()); d > 0 {
		time.Sleep(d)
	}
	return !i.down.Load()
}

func (i *IdP) discovery(w http.ResponseWriter, r *http.Request) {
	i.discHits.Add(1)
	if !i.wait() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"issuer":                                i.Issuer(),
		"jwks_uri":                              i.JWKSURL(),
		"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
	})
}

func (i *IdP) jwks(w http.ResponseWriter, r *http.Request) {
	i.jwksHits.Add(1)
	if !i.wait() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	var set jose.JSONWebKeySet
	for _, k := range i.Keys() {
		set.Keys = append(set.Keys, k.Public())
	}
	body, _ := json.Marshal(set)
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		i.notModified.Add(1)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// Claims returns standard claims for a token valid for an hour.
func (i *IdP) Claims(aud string, scopes ...string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss":       i.Issuer(),
		"sub":       "aftership",
		"client_id": "aftership",
		"aud":       aud,
		"scope":     strings.Join(scopes, " "),
		"iat":       now.Unix(),
		"exp":       now.Add(time.Hour).Unix(),
		"jti":       fmt.Sprintf("%d", now.UnixNano()),
	}
}

// Mint signs claims with the current signer.
func (i *IdP) Mint(claims map[string]any) string {
	return Sign(i.Signer(), claims, nil)
}

// Sign signs claims with k, adding extra protected headers.
func Sign(k *Key, claims map[string]any, extra map[string]any) string {
	payload, err := json.Marshal(claims)
	if err != nil {
		panic(err)
	}
	return SignRaw(k, payload, extra)
}

// SignRaw signs a payload exactly as given (duplicate or escaped claim
// names that no map can hold), adding extra protected headers.
func SignRaw(k *Key, payload []byte, extra map[string]any) string {
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", k.ID)
	for h, v := range extra {
		opts = opts.WithHeader(jose.HeaderKey(h), v)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.Alg, Key: k.Private}, opts)
	if err != nil {
		panic(err)
	}
	obj, err := s.Sign(payload)
	if err != nil {
		panic(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		panic(err)
	}
	return out
}

// SignHMAC signs claims with HS256/384/512 and an arbitrary secret (for key
// confusion attacks: the secret is the issuer's public key bytes).
func SignHMAC(alg jose.SignatureAlgorithm, secret []byte, kid string, claims map[string]any) string {
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: secret}, opts)
	if err != nil {
		panic(err)
	}
	payload, _ := json.Marshal(claims)
	obj, err := s.Sign(payload)
	if err != nil {
		panic(err)
	}
	out, _ := obj.CompactSerialize()
	return out
}

// Unsigned builds a token with the given header (e.g. alg "none") and no
// valid signature.
func Unsigned(header, claims map[string]any, sig string) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding
	return enc.EncodeToString(h) + "." + enc.EncodeToString(c) + "." + sig
}

// NewKeyFast makes a fresh ES256 key (cheap to generate, for floods).
func NewKeyFast() *Key { return NewKey(jose.ES256) }

// Publish adds k to the JWKS without signing with it (pre-publication for
// rotation).
func (i *IdP) Publish(k *Key) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.published = append(i.published, k)
}

// Retire withdraws k from the JWKS.
func (i *IdP) Retire(k *Key) {
	i.mu.Lock()
	defer i.mu.Unlock()
	out := i.published[:0]
	for _, p := range i.published {
		if p != k {
			out = append(out, p)
		}
	}
	i.published = out
}

// SignRawHeader signs payload under a protected header given byte for byte
// (duplicate members, odd spellings, bytes go-jose would not write), with
// k's algorithm (RS*, PS*, ES*, EdDSA).
func SignRawHeader(k *Key, header, payload []byte) string {
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(header) + "." + enc.EncodeToString(payload)
	return input + "." + enc.EncodeToString(SignInput(k, input))
}

// SignInput is k's JWS signature (RFC 7518 §3) over a signing input.
func SignInput(k *Key, input string) []byte {
	var h crypto.Hash
	switch k.Alg {
	case jose.RS256, jose.PS256, jose.ES256:
		h = crypto.SHA256
	case jose.RS384, jose.PS384, jose.ES384:
		h = crypto.SHA384
	case jose.RS512, jose.PS512, jose.ES512:
		h = crypto.SHA512
	case jose.EdDSA:
		sig, err := k.Private.Sign(rand.Reader, []byte(input), crypto.Hash(0))
		if err != nil {
			panic(err)
		}
		return sig
	default:
		panic("verifiertest: unsupported alg " + string(k.Alg))
	}
	d := h.New()
	d.Write([]byte(input))
	digest := d.Sum(nil)
	switch priv := k.Private.(type) {
	case *rsa.PrivateKey:
		var sig []byte
		var err error
		if k.Alg[0] == 'P' {
			sig, err = rsa.SignPSS(rand.Reader, priv, h, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		} else {
			sig, err = rsa.SignPKCS1v15(rand.Reader, priv, h, digest)
		}
		if err != nil {
			panic(err)
		}
		return sig
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, priv, digest)
		if err != nil {
			panic(err)
		}
		size := (priv.Curve.Params().BitSize + 7) / 8
		sig := make([]byte, 2*size)
		r.FillBytes(sig[:size])
		s.FillBytes(sig[size:])
		return sig
	}
	panic("verifiertest: key type does not fit " + string(k.Alg))
}
