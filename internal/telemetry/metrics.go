package telemetry

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Verification paths: the "path" label of
// tokengate_verification_duration_seconds.
const (
	PathCache         = "cache"
	PathJWT           = "jwt"
	PathIntrospection = "introspection"
	PathEmbedded      = "embedded"
)

// latencyBuckets span 100µs (a cache hit) to 10s (a slow receiver).
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Options are what New needs besides the metrics themselves.
type Options struct {
	// Version is the build's version, the label of tokengate_build_info.
	Version string
	// CacheEntries reports the number of verified tokens cached, read at
	// scrape time. nil: 0.
	CacheEntries func() float64
	// TokenExpiries reports each running egress entry's seconds left on
	// its access token, calling report once per entry, at scrape time.
	// nil: no entries.
	TokenExpiries func(report func(egress string, secondsLeft float64))
	// Recent, when set, is also told of every request on the public
	// listener (the status page's per-minute counts). nil: not told.
	Recent RequestRecorder
}

// RequestRecorder keeps recent requests by route and decision.
type RequestRecorder interface {
	// Record counts one request; it must be cheap and never block for
	// long (it runs on every request).
	Record(route, decision string)
}

// Metrics are tokengate's Prometheus metrics. They live for the process
// and survive reloads. Safe for concurrent use.
type Metrics struct {
	reg             *prometheus.Registry
	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	verifyDuration  *prometheus.HistogramVec
	cacheHits       prometheus.Counter
	cacheMisses     prometheus.Counter
	cacheEvictions  prometheus.Counter
	jwksFetches     *prometheus.CounterVec
	introspections  *prometheus.CounterVec
	tokensIssued    prometheus.Counter
	loginFailures   prometheus.Counter
	upstream        prometheus.Histogram
	reloads         *prometheus.CounterVec
	lastReload      prometheus.Gauge

	egressRequests      *prometheus.CounterVec
	egressTokenRequests *prometheus.CounterVec
	egressRetries       *prometheus.CounterVec
	egressWaits         *prometheus.CounterVec
	egressShared        *prometheus.CounterVec

	signatures *prometheus.CounterVec
	queue      queueMetrics
	rateLimits rateLimitMetrics
	recent     RequestRecorder // nil: none
}

// New registers every metric in a registry of its own, with the Go
// runtime and process collectors.
func New(o Options) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), recent: o.Recent}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokengate_requests_total", Help: "Requests on the public listener by route, decision and HTTP status code.",
	}, []string{"route", "decision", "code"})
	m.requestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "tokengate_request_duration_seconds", Help: "Time from request to response on the public listener, by route.", Buckets: latencyBuckets,
	}, []string{"route"})
	m.verifyDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "tokengate_verification_duration_seconds", Help: "Token verification latency by path taken: cache, jwt, introspection, embedded.", Buckets: latencyBuckets,
	}, []string{"path"})
	m.cacheHits = prometheus.NewCounter(prometheus.CounterOpts{Name: "tokengate_cache_hits_total", Help: "Verifications answered from the cache."})
	m.cacheMisses = prometheus.NewCounter(prometheus.CounterOpts{Name: "tokengate_cache_misses_total", Help: "Verifications not in the cache (concurrent misses of one token count each)."})
	m.cacheEvictions = prometheus.NewCounter(prometheus.CounterOpts{Name: "tokengate_cache_evictions_total", Help: "Cache entries evicted to make room."})
	m.jwksFetches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokengate_jwks_fetches_total", Help: "JWKS fetches by issuer and result (success, failure).",
	}, []string{"issuer", "result"})
	m.introspections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokengate_introspection_requests_total", Help: "RFC 7662 introspection calls by issuer and result (success, error).",
	}, []string{"issuer", "result"})
	m.tokensIssued = prometheus.NewCounter(prometheus.CounterOpts{Name: "tokengate_tokens_issued_total", Help: "Access tokens issued by the embedded token endpoint."})
	m.loginFailures = prometheus.NewCounter(prometheus.CounterOpts{Name: "tokengate_client_auth_failures_total", Help: "Failed client logins at the embedded token endpoint."})
	m.upstream = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "tokengate_upstream_duration_seconds", Help: "Time the receiver took, for forwarded requests.", Buckets: latencyBuckets})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokengate_config_reloads_total", Help: "Configuration reloads by result (success, failure).",
	}, []string{"result"})
	m.lastReload = prometheus.NewGauge(prometheus.GaugeOpts{Name: "tokengate_config_last_reload_success_timestamp_seconds", Help: "When the configuration in use was loaded."})
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "tokengate_build_info", Help: "Always 1; the version label says which build runs.", ConstLabels: prometheus.Labels{"version": o.Version}})
	build.Set(1)
	cacheEntries := o.CacheEntries
	if cacheEntries == nil {
		cacheEntries = func() float64 { return 0 }
	}
	entries := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tokengate_cache_entries", Help: "Verified tokens currently cached."}, cacheEntries)
	m.egressRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokengate_egress_requests_total", Help: "Requests on egress listeners by egress and the HTTP status code returned to the app.",
	}, []string{"egress", "code"})
	m.egressTokenRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokengate_egress_token_requests_total", Help: "Token requests by egress and result: success, an RFC 6749 error code (invalid_client, invalid_scope, ...), rate_limited, server_error, timeout, unreachable, bad_response, unsupported_token_type, lifetime_too_short, other_error.",
	}, []string{"egress", "result"})
	m.egressRetries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokengate_egress_retries_total", Help: "Upstream 401 answers by egress and outcome: retried (new token, sent again), not_replayable (body too large), throttled, no_token.",
	}, []string{"egress", "outcome"})
	m.egressWaits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokengate_egress_token_waits_total", Help: "Egress requests that found no valid token and had to wait for one (0 in steady state).",
	}, []string{"egress"})
	m.egressShared = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokengate_egress_shared_tokens_total", Help: "Shared egress tokens (token.shared: redis) by egress and outcome: read (taken from Redis), fetched (requested here and stored for the other replicas), fallback (Redis did not answer: this replica's own token), invalidated (an upstream 401 deleted the shared token).",
	}, []string{"egress", "outcome"})
	m.signatures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokengate_signature_verifications_total", Help: "Signed-webhook verifications by route and result: ok, signature_missing, signature_malformed, signature_mismatch, timestamp_outside_tolerance, duplicate_message, message_in_flight, replay_store_unavailable, replay_store_full.",
	}, []string{"route", "result"})
	m.queue = newQueueMetrics()
	m.reg.MustRegister(m.queue.collectors()...)
	m.rateLimits = newRateLimitMetrics()
	m.reg.MustRegister(m.rateLimits.collectors()...)
	m.reg.MustRegister(
		m.signatures, m.egressRequests, m.egressTokenRequests, m.egressRetries, m.egressWaits, m.egressShared, expiryCollector{o.TokenExpiries},
		m.requests, m.requestDuration, m.verifyDuration, m.cacheHits, m.cacheMisses, m.cacheEvictions,
		m.jwksFetches, m.introspections, m.tokensIssued, m.loginFailures, m.upstream, m.reloads, m.lastReload,
		build, entries,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	for _, r := range []string{"success", "failure"} {
		m.reloads.WithLabelValues(r)
	}
	return m
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
