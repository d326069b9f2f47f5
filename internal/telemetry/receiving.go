package telemetry

import (
	"strconv"
	"time"
)

// The receiving side's observations: requests on the public listener,
// token verification, the embedded token endpoint, signed webhooks and
// configuration reloads.

// ObserveRequest counts one request on the public listener and its
// latency (proxy.Observer), and tells Options.Recent. An empty route is
// "(none)".
func (m *Metrics) ObserveRequest(route, decision string, status int, elapsed time.Duration) {
	if route == "" {
		route = "(none)"
	}
	m.requests.WithLabelValues(route, decision, strconv.Itoa(status)).Inc()
	m.requestDuration.WithLabelValues(route).Observe(elapsed.Seconds())
	if m.recent != nil {
		m.recent.Record(route, decision)
	}
}

// ObserveUpstream records how long the receiver took (proxy.Observer).
func (m *Metrics) ObserveUpstream(elapsed time.Duration) { m.upstream.Observe(elapsed.Seconds()) }

// ObserveSignature counts a signed-webhook verdict by route and result
// (proxy.SignatureObserver).
func (m *Metrics) ObserveSignature(route, result string) {
	m.signatures.WithLabelValues(route, result).Inc()
}

// JWKSFetched counts one JWKS fetch of an issuer: success, or failure when
// err is not nil.
func (m *Metrics) JWKSFetched(issuer string, err error) {
	r := "success"
	if err != nil {
		r = "failure"
	}
	m.jwksFetches.WithLabelValues(issuer, r).Inc()
}

// Introspected counts one introspection call of an issuer: success (an
// answer, active or not), or error when the endpoint could not answer.
func (m *Metrics) Introspected(issuer string, unavailable bool) {
	r := "success"
	if unavailable {
		r = "error"
	}
	m.introspections.WithLabelValues(issuer, r).Inc()
}

// Verified returns the hook that records how long the verifications of
// one path (Path…) took.
func (m *Metrics) Verified(path string) func(time.Duration, error) {
	h := m.verifyDuration.WithLabelValues(path)
	return func(d time.Duration, _ error) { h.Observe(d.Seconds()) }
}

// CacheHooks returns the verification cache's hooks: a hit (counted, and
// its latency recorded under PathCache), a miss, an eviction.
func (m *Metrics) CacheHooks() (hit func(time.Duration), miss, evict func()) {
	h := m.verifyDuration.WithLabelValues(PathCache)
	return func(d time.Duration) { m.cacheHits.Inc(); h.Observe(d.Seconds()) }, m.cacheMisses.Inc, m.cacheEvictions.Inc
}

// TokenIssued counts an access token issued by the embedded token
// endpoint.
func (m *Metrics) TokenIssued() { m.tokensIssued.Inc() }

// LoginFailed counts a failed client login at the embedded token
// endpoint.
func (m *Metrics) LoginFailed() { m.loginFailures.Inc() }

// ConfigLoaded records that a configuration was loaded and serves now.
func (m *Metrics) ConfigLoaded() { m.lastReload.SetToCurrentTime() }

// Reloaded counts a reload by its result; a successful one also records
// when the configuration in use was loaded.
func (m *Metrics) Reloaded(ok bool) {
	if !ok {
		m.reloads.WithLabelValues("failure").Inc()
		return
	}
	m.reloads.WithLabelValues("success").Inc()
	m.lastReload.SetToCurrentTime()
}
