package telemetry

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// The calling side's observations: egress requests, 401 retries, token
// requests, waits for a token, and each token's time left.

// EgressRequest counts a request on an egress listener by the status code
// returned to the app (egress.Observer).
func (m *Metrics) EgressRequest(name string, code int) {
	m.egressRequests.WithLabelValues(name, strconv.Itoa(code)).Inc()
}

// EgressRetry counts an upstream 401 by its outcome (egress.Observer).
func (m *Metrics) EgressRetry(name, outcome string) {
	m.egressRetries.WithLabelValues(name, outcome).Inc()
}

// EgressTokenRequests returns the hook that counts an egress entry's
// token requests by result (egress.SourceOptions.OnTokenRequest).
func (m *Metrics) EgressTokenRequests(name string) func(result string) {
	return func(result string) { m.egressTokenRequests.WithLabelValues(name, result).Inc() }
}

// EgressWaits returns the hook that counts an egress entry's callers that
// had to wait for a token (egress.SourceOptions.OnWait).
func (m *Metrics) EgressWaits(name string) func() {
	return m.egressWaits.WithLabelValues(name).Inc
}

// EgressShared returns the hook that counts what a shared egress entry's
// token store did (egress.SharedOptions.OnEvent): read, fetched,
// fallback (Redis did not answer), invalidated.
func (m *Metrics) EgressShared(name string) func(outcome string) {
	return func(outcome string) { m.egressShared.WithLabelValues(name, outcome).Inc() }
}

var expiryDesc = prometheus.NewDesc("tokengate_egress_token_expiry_seconds",
	"Seconds left on the egress's current access token (0: none).", []string{"egress"}, nil)

// expiryCollector reports each running egress's seconds left at scrape
// time; entries come and go with reloads.
type expiryCollector struct {
	expiries func(report func(egress string, secondsLeft float64))
}

// Describe sends the gauge's one description.
func (c expiryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- expiryDesc }

// Collect sends each running egress entry's seconds left.
func (c expiryCollector) Collect(ch chan<- prometheus.Metric) {
	if c.expiries == nil {
		return
	}
	c.expiries(func(name string, left float64) {
		ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, left, name)
	})
}
