package telemetry

import "github.com/prometheus/client_golang/prometheus"

// rateLimitMetrics count route rate-limit refusals and the rate-limit
// decisions made in memory because the shared Redis failed.
type rateLimitMetrics struct {
	limited   *prometheus.CounterVec
	fallbacks *prometheus.CounterVec
}

func newRateLimitMetrics() rateLimitMetrics {
	return rateLimitMetrics{
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokengate_route_rate_limited_total", Help: "Verified requests refused (429) by their route's rate_limit, by route.",
		}, []string{"route"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokengate_rate_limit_redis_fallbacks_total", Help: "Rate-limit decisions made in this process's memory because the shared Redis failed or was slow, by limiter: route:<name>, token_endpoint_per_ip, token_endpoint_per_client, token_endpoint_per_ip_failures.",
		}, []string{"limiter"}),
	}
}

func (r rateLimitMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{r.limited, r.fallbacks}
}

// ObserveRateLimited counts a request refused by its route's rate limit
// (proxy.RateLimitObserver).
func (m *Metrics) ObserveRateLimited(route string) { m.rateLimits.limited.WithLabelValues(route).Inc() }

// RateLimitFallback counts a rate-limit decision of limiter made in
// memory because Redis failed.
func (m *Metrics) RateLimitFallback(limiter string) {
	m.rateLimits.fallbacks.WithLabelValues(limiter).Inc()
}
