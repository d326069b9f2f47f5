package stack

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"strings"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/telemetry"
	"github.com/tokengate/tokengate/issuer"
	"github.com/tokengate/tokengate/proxy"
	"github.com/tokengate/tokengate/signature"
)

// Options are a Builder's collaborators; all optional.
type Options struct {
	// Logger receives warnings (a throw-away key, an upstream whose
	// certificate is not verified) and the components' own logs. nil: no
	// logging.
	Logger *zap.Logger
	// Metrics receive every component's observations. nil: no metrics.
	Metrics *telemetry.Metrics
	// Queue stores the requests of queued routes; it outlives reloads.
	// nil: a queued route answers 503 (no store is open).
	Queue proxy.Enqueuer
	// ReplayStore, when set, stands in for the store
	// signatures.replay_store names: check --webhook passes a recorder,
	// so that nothing is claimed in the real store. nil: the configured
	// store.
	ReplayStore signature.Store
	// Tracing, when set, wraps the public handler in a server span per
	// request and has the proxy trace and propagate. nil: tracing off,
	// nothing wrapped.
	Tracing *telemetry.Tracing
}

// Builder builds stacks; it outlives reloads. Not safe for concurrent
// use: one build (and its commit or abort) at a time.
type Builder struct {
	log     *zap.Logger
	metrics *telemetry.Metrics // nil: no metrics
	queue   proxy.Enqueuer     // nil: no queue store open
	tracing *telemetry.Tracing // nil: tracing off
	// keepClaims: some route or header uses claims beyond the registered
	// ones, so JWT verifiers keep them all (set per build).
	keepClaims bool
	// claimNames are the claims routes and claim headers read: the only
	// ones a verification keeps (set per build, with keepClaims).
	claimNames []string
	// generated is the throw-away signing key made when the token endpoint
	// has no key files; kept across reloads so tokens stay valid.
	generated *issuer.Key
	// replay is the signed-webhook replay store, kept across reloads;
	// pending is a new one built for a stack that does not serve yet.
	replay, pending *replayHolder
	// replayOverride replaces the configured replay store (Options.ReplayStore).
	replayOverride signature.Store
	// redisCur is the redis: block's client of the serving stack;
	// redisNext the one the last build used (redisBuilt: a build ran since
	// the last commit or abort). limitsCur and limitsNext are the route
	// rate limiters, by route name, likewise (shared.go).
	redisCur, redisNext   *sharedRedis
	redisBuilt            bool
	limitsCur, limitsNext map[string]*routeLimiter
}

// NewBuilder returns a Builder with nothing built yet.
func NewBuilder(o Options) *Builder {
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &Builder{log: log, metrics: o.Metrics, queue: o.Queue, replayOverride: o.ReplayStore, tracing: o.Tracing}
}

// Build wires a validated configuration. When prev verifies exactly as the
// new configuration would, its verifiers, keys and cache are kept, so a
// reload that only changes routes or clients loses no cached token.
func (b *Builder) Build(cfg *config.Config, prev *Stack) (*Stack, error) {
	vk, err := verificationKey(cfg)
	if err != nil {
		return nil, err
	}
	b.keepClaims = usesClaims(cfg)
	b.claimNames = proxy.ClaimNames(cfg)
	if b.keepClaims {
		// the claims kept decide what a cached verification holds: a
		// reload that reads another claim must not reuse the cache
		vk += "+claims:" + strings.Join(b.claimNames, "\x00")
	}
	st := &Stack{cfg: cfg, verifyKey: vk}
	shared, err := b.redisClient(cfg)
	if err != nil {
		return nil, err
	}
	st.shared = sharedStatus(shared)
	if !cfg.Receiving() {
		st.handler = notReceiving()
		return st, nil
	}
	if prev != nil && prev.verifyKey == vk && prev.cache != nil {
		st.cache, st.jwts, st.keys, st.embedded, st.intro = prev.cache, prev.jwts, prev.keys, prev.embedded, prev.intro
	} else if err := b.buildVerifiers(cfg, st); err != nil {
		return nil, err
	}
	fwd, err := proxy.NewForwarding(cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	if te := cfg.TokenEndpoint; te != nil {
		if st.tokens, err = b.buildIssuer(te, st.keys, fwd.ClientIP, shared); err != nil {
			return nil, err
		}
	}
	if prev != nil && prev.transport != nil && reflect.DeepEqual(prev.cfg.Upstream, cfg.Upstream) {
		st.transport = prev.transport
	} else {
		if st.transport, err = proxy.NewTransport(cfg.Upstream); err != nil {
			return nil, err
		}
		if cfg.Upstream.InsecureSkipTLSVerify {
			b.log.Warn("upstream.insecure_skip_tls_verify is ON: the receiver's certificate is NOT verified; anyone on the path can impersonate it")
		}
	}
	sigs, err := b.Signatures(cfg)
	if err != nil {
		return nil, err
	}
	st.replayHealth = b.replayHealth(cfg)
	st.replay = b.replayStatus(cfg)
	opts := proxy.Options{Logger: b.log.Named("access"), Transport: st.transport, Forwarding: fwd, Signatures: sigs,
		RateLimits: b.rateLimits(cfg, shared), Propagator: b.tracing.Propagator()}
	if b.metrics != nil {
		opts.Observer = b.metrics
	}
	if cfg.QueuedRoutes() {
		opts.Queue = b.enqueuer()
	}
	h, err := proxy.New(cfg, st.Verifier(), opts)
	if err != nil {
		return nil, err
	}
	st.handler = h
	if st.tokens != nil {
		st.handler = withTokenEndpoint(st.tokens, h)
	}
	if b.tracing != nil {
		var trust []string
		if t := cfg.Telemetry.Tracing; t != nil {
			trust = t.TrustIncoming
		}
		trusted, err := telemetry.TrustPeers(trust)
		if err != nil {
			return nil, err
		}
		st.handler = b.tracing.Handler(st.handler, "", trusted)
	}
	return st, nil
}

// Verification builds what decides whether a token verifies (every
// issuer's verifier, the token endpoint's keys, the cache) as Build does,
// without the token endpoint's handler, the upstream transport or a
// network call: for check --token, which sends its one request through a
// handler of its own. The Stack returned does not serve (Handler is nil).
func (b *Builder) Verification(cfg *config.Config) (*Stack, error) {
	b.keepClaims = usesClaims(cfg)
	b.claimNames = proxy.ClaimNames(cfg)
	st := &Stack{cfg: cfg}
	if err := b.buildVerifiers(cfg, st); err != nil {
		return nil, err
	}
	return st, nil
}

// usesClaims reports whether a route policy or a header needs claims
// beyond the registered and scope claims.
func usesClaims(cfg *config.Config) bool {
	if len(cfg.Headers.Claims) > 0 {
		return true
	}
	for _, r := range cfg.Routes {
		if len(r.Require.Claims) > 0 {
			return true
		}
	}
	return false
}

// verificationKey identifies everything that decides how a token verifies:
// issuers, cache settings, and the token endpoint's identity and keys
// (including the key files' contents). Routes and clients are not in it.
func verificationKey(cfg *config.Config) (string, error) {
	v := struct {
		Issuers []config.Issuer
		Cache   config.Cache
		TE      any
	}{Issuers: cfg.Issuers, Cache: cfg.Cache}
	if te := cfg.TokenEndpoint; te != nil {
		var sums []string
		for _, f := range te.SigningKeyFiles {
			b, err := os.ReadFile(f)
			if err != nil {
				return "", fmt.Errorf("token_endpoint.signing_key_files: %w", err)
			}
			s := sha256.Sum256(b)
			sums = append(sums, fmt.Sprintf("%x", s))
		}
		v.TE = []any{te.Name, te.Issuer, te.Audience, te.Algorithm, sums, te.ClockSkew.D()}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%x", sha256.Sum256(b)), nil
}

// notReceiving answers on the public listener of a process whose
// configuration has no receiving side any more (reloaded to egress only).
func notReceiving() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":"not_found","error_description":"this tokengate has no receiving side configured"}` + "\n"))
	})
}
