package config

import (
	"fmt"
	"net/url"
	"slices"
	"time"
)

// Route authentication modes (Route.Auth).
const (
	// AuthBearer: a bearer token, verified by the issuers (the default
	// for a route without signature).
	AuthBearer = "bearer"
	// AuthSignature: a signed webhook, no token (the default for a route
	// with signature).
	AuthSignature = "signature"
	// AuthAny: whichever credential the request presents: its signature
	// when it carries the scheme's signature header, else its token.
	AuthAny = "any"
	// AuthAll: both a valid token and a valid signature.
	AuthAll = "all"
)

// Signature schemes (Signature.Scheme).
var signatureSchemes = []string{"standard-webhooks", "github", "stripe", "shopify"}

// Defaults of signed-webhook settings.
const (
	DefaultSignatureTolerance   = 5 * time.Minute
	DefaultSignatureBodyMemory  = 64 << 20
	DefaultReplayMemoryEntries  = 100_000
	DefaultReplayStoreTimeout   = time.Second
	DefaultSignatureMaxBodySize = 1 << 20
)

// Signature is a route's signed-webhook policy.
type Signature struct {
	// Scheme is standard-webhooks, github, stripe or shopify.
	Scheme string `yaml:"scheme"`
	// Secrets, several during a rotation; each exactly one ${ENV_VAR}
	// (plain text in the file is refused). Standard Webhooks' "whsec_…"
	// and "whpk_…" (Ed25519 public key, for v1a) forms are accepted.
	Secrets []string `yaml:"secrets"`
	// SecretFiles hold one secret each (trailing newline trimmed), read at
	// load and added to the secrets.
	SecretFiles []string `yaml:"secret_files"`
	// Tolerance bounds the signed timestamp's distance from now, and is
	// how long a message id is remembered. Default 5m.
	Tolerance Duration `yaml:"tolerance"`
	// Replay answers a copy of a message delivered within twice the
	// tolerance as a duplicate (200, not forwarded). Default true.
	Replay *bool `yaml:"replay"`
	// MaxBodySize is the largest signed body read (it is held in memory
	// to be verified); larger ones get 413. Default 1 MiB, at most
	// upstream.max_body_size.
	MaxBodySize ByteSize `yaml:"max_body_size"`

	// FileSecrets are the contents of SecretFiles.
	FileSecrets []string `yaml:"-"`
}

// AllSecrets are the configured secrets, from the environment and files.
func (s *Signature) AllSecrets() []string {
	return append(slices.Clone(s.Secrets), s.FileSecrets...)
}

// ReplayOn reports whether replay protection is enabled.
func (s *Signature) ReplayOn() bool { return s.Replay == nil || *s.Replay }

// Signatures are the settings every signed route shares.
type Signatures struct {
	// ReplayStore is "memory" (default; one instance) or a redis:// or
	// rediss:// URL (several replicas in front of one receiver); a
	// password belongs in the URL as ${ENV_VAR}.
	ReplayStore string `yaml:"replay_store"`
	// ReplayFailOpen forwards a verified message unchecked for replays
	// when the store cannot be asked (logged). Default false: 503. A full
	// memory store is not failed open: it answers 503.
	ReplayFailOpen bool `yaml:"replay_fail_open"`
	// ReplayMemoryEntries bounds the messages the in-memory store holds
	// per route; none is forgotten before its window ends, so past it new
	// messages get 503 with Retry-After. Default 100000.
	ReplayMemoryEntries int `yaml:"replay_memory_entries"`
	// StoreTimeout bounds each Redis command. Default 1s.
	StoreTimeout Duration `yaml:"store_timeout"`
	// BodyMemory bounds the signed bodies held at once, all requests
	// together; past it requests get 503 with Retry-After. Default 64 MiB.
	BodyMemory ByteSize `yaml:"body_memory"`
}

// RedisReplay reports whether the replay store is Redis.
func (s *Signatures) RedisReplay() bool { return s.ReplayStore != "" && s.ReplayStore != "memory" }

// AuthMode is the route's effective auth mode.
func (r *Route) AuthMode() string {
	switch {
	case r.Auth != "":
		return r.Auth
	case r.Signature != nil:
		return AuthSignature
	}
	return AuthBearer
}

// NeedsToken reports whether the route verifies bearer tokens at all.
func (r *Route) NeedsToken() bool {
	m := r.AuthMode()
	return !r.Public && m != AuthSignature
}

func (c *Config) signatureDefaults() {
	s := &c.Signatures
	setDefault(&s.ReplayStore, "memory")
	setDefault(&s.ReplayMemoryEntries, DefaultReplayMemoryEntries)
	setDefault(&s.StoreTimeout, Duration(DefaultReplayStoreTimeout))
	setDefault(&s.BodyMemory, ByteSize(DefaultSignatureBodyMemory))
	for i := range c.Routes {
		sig := c.Routes[i].Signature
		if sig == nil {
			continue
		}
		setDefault(&sig.Tolerance, Duration(DefaultSignatureTolerance))
		setDefault(&sig.MaxBodySize, min(ByteSize(DefaultSignatureMaxBodySize), c.Upstream.MaxBodySize))
	}
}

// signatures validates the routes' signature policies and the store.
func (v *validator) signatures() {
	for i, r := range v.c.Routes {
		p := fmt.Sprintf("routes[%d]", i)
		switch r.Auth {
		case "", AuthBearer, AuthSignature, AuthAny, AuthAll:
		default:
			v.add(p+".auth", "must be bearer, signature, any or all, got %q", r.Auth)
		}
		sig := r.Signature
		if r.Public && (sig != nil || r.Auth != "") {
			v.add(p, "a public route needs no credentials, so it cannot set auth or signature")
			continue
		}
		mode := r.AuthMode()
		if sig == nil {
			if mode != AuthBearer {
				v.add(p+".signature", "required with auth: %s", mode)
			}
			continue
		}
		if mode == AuthBearer {
			v.add(p+".auth", "auth: bearer ignores the signature block: use signature, any or all")
		}
		sp := p + ".signature"
		if !slices.Contains(signatureSchemes, sig.Scheme) {
			v.add(sp+".scheme", "must be one of %v, got %q", signatureSchemes, sig.Scheme)
		}
		if len(sig.Secrets)+len(sig.SecretFiles) == 0 {
			v.add(sp+".secrets", "required: secrets: [${ENV_VAR}] or secret_files")
		}
		for j := range sig.Secrets {
			if !v.c.envPaths[fmt.Sprintf("%s.secrets[%d]", sp, j)] {
				v.add(fmt.Sprintf("%s.secrets[%d]", sp, j), "plain-text secrets are refused: write ${ENV_VAR} (set and non-empty) or use secret_files")
			}
		}
		if t := sig.Tolerance.D(); t < time.Second || t > time.Hour {
			v.add(sp+".tolerance", "must be between 1s and 1h, got %s", t)
		}
		if sig.MaxBodySize <= 0 || sig.MaxBodySize > v.c.Upstream.MaxBodySize {
			v.add(sp+".max_body_size", "must be positive and at most upstream.max_body_size (%d)", v.c.Upstream.MaxBodySize)
		}
		if sig.MaxBodySize > v.c.Signatures.BodyMemory {
			v.add(sp+".max_body_size", "larger than signatures.body_memory (%d): such a body could never be held", v.c.Signatures.BodyMemory)
		}
	}
	s := v.c.Signatures
	if s.RedisReplay() {
		if u, err := url.Parse(s.ReplayStore); err == nil && u.Scheme != "redis" && u.Scheme != "rediss" {
			v.add("signatures.replay_store", "must be memory or a redis:// or rediss:// URL")
		} else {
			v.redisURL("signatures.replay_store", s.ReplayStore)
		}
	}
	if s.StoreTimeout.D() <= 0 || s.BodyMemory <= 0 || s.ReplayMemoryEntries <= 0 {
		v.add("signatures", "store_timeout, body_memory and replay_memory_entries must be positive")
	}
}
