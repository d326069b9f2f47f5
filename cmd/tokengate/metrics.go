package main

import (
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tokengate/tokengate/egress"
	"github.com/tokengate/tokengate/proxy"
	"github.com/tokengate/tokengate/verifier"
)

// Verification paths (the "path" label of verification latency).
const (
	pathCache         = "cache"
	pathJWT           = "jwt"
	pathIntrospection = "introspection"
	pathEmbedded      = "embedded"
)

// metrics are tokengate's Prometheus metrics. They live for the process and
// survive reloads. No label ever holds a token, subject, client id or other
// unbounded value: routes and issuers are names from the config, decisions
// and paths are fixed sets, codes are HTTP status codes.
type metrics struct {
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

	signatures *prometheus.CounterVec
}

var (
	_ proxy.Observer  = (*metrics)(nil)
	_ egress.Observer = (*metrics)(nil)

	_ proxy.SignatureObserver = (*metrics)(nil)
)

// latencyBuckets span 100µs (a cache hit) to 10s (a slow receiver).
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// newMetrics registers every metric. cacheEntries reports the cache size;
// egressSources lists the running egress token sources for the expiry
// gauge.
func newMetrics(version string, cacheEntries func() float64, egressSources func() []*egress.Source) *metrics {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &metrics{reg: reg}
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
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "tokengate_build_info", Help: "Always 1; the version label says which build runs.", ConstLabels: prometheus.Labels{"version": version}})
	build.Set(1)
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
	m.signatures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokengate_signature_verifications_total", Help: "Signed-webhook verifications by route and result: ok, signature_missing, signature_malformed, signature_mismatch, timestamp_outside_tolerance, duplicate_message, message_in_flight, replay_store_unavailable, replay_store_full.",
	}, []string{"route", "result"})
	for _, c := range []prometheus.Collector{
		m.signatures, m.egressRequests, m.egressTokenRequests, m.egressRetries, m.egressWaits, expiryCollector{egressSources},
		m.requests, m.requestDuration, m.verifyDuration, m.cacheHits, m.cacheMisses, m.cacheEvictions,
		m.jwksFetches, m.introspections, m.tokensIssued, m.loginFailures, m.upstream, m.reloads, m.lastReload,
		build, entries,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		f(c)
	}
	for _, r := range []string{"success", "failure"} {
		m.reloads.WithLabelValues(r)
	}
	return m
}

// ObserveRequest implements proxy.Observer.
func (m *metrics) ObserveRequest(route, decision string, status int, elapsed time.Duration) {
	if route == "" {
		route = "(none)"
	}
	m.requests.WithLabelValues(route, decision, strconv.Itoa(status)).Inc()
	m.requestDuration.WithLabelValues(route).Observe(elapsed.Seconds())
}

// ObserveSignature implements proxy.SignatureObserver.
func (m *metrics) ObserveSignature(route, result string) {
	m.signatures.WithLabelValues(route, result).Inc()
}

// ObserveUpstream implements proxy.Observer.
func (m *metrics) ObserveUpstream(elapsed time.Duration) { m.upstream.Observe(elapsed.Seconds()) }

func (m *metrics) jwksFetched(issuer string, err error) {
	r := "success"
	if err != nil {
		r = "failure"
	}
	m.jwksFetches.WithLabelValues(issuer, r).Inc()
}

func (m *metrics) introspected(issuer string, err error) {
	r := "success" // an answer, active or not
	if errors.Is(err, verifier.ErrUnavailable) {
		r = "error"
	}
	m.introspections.WithLabelValues(issuer, r).Inc()
}

// onVerify records how long the verifications of one path took.
func (m *metrics) onVerify(path string) func(time.Duration, error) {
	h := m.verifyDuration.WithLabelValues(path)
	return func(d time.Duration, _ error) { h.Observe(d.Seconds()) }
}

func (m *metrics) cacheOptions(o verifier.CacheOptions) verifier.CacheOptions {
	hit := m.verifyDuration.WithLabelValues(pathCache)
	o.OnHit = func(d time.Duration) { m.cacheHits.Inc(); hit.Observe(d.Seconds()) }
	o.OnMiss = m.cacheMisses.Inc
	o.OnEvict = m.cacheEvictions.Inc
	return o
}

// EgressRequest implements egress.Observer.
func (m *metrics) EgressRequest(name string, code int) {
	m.egressRequests.WithLabelValues(name, strconv.Itoa(code)).Inc()
}

// EgressRetry implements egress.Observer.
func (m *metrics) EgressRetry(name, outcome string) {
	m.egressRetries.WithLabelValues(name, outcome).Inc()
}

var expiryDesc = prometheus.NewDesc("tokengate_egress_token_expiry_seconds",
	"Seconds left on the egress's current access token (0: none).", []string{"egress"}, nil)

// expiryCollector reports each running egress's seconds left at scrape
// time; entries come and go with reloads.
type expiryCollector struct{ sources func() []*egress.Source }

func (c expiryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- expiryDesc }

func (c expiryCollector) Collect(ch chan<- prometheus.Metric) {
	if c.sources == nil {
		return
	}
	for _, s := range c.sources() {
		ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, s.SecondsLeft(), s.Name())
	}
}
