package telemetry

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokengate/tokengate/queue"
)

// The delivery queue's observations (queue.Observer): stored messages and
// bytes per route, the oldest pending message's age, attempts by outcome.

// queueMetrics are registered by New.
type queueMetrics struct {
	messages *prometheus.GaugeVec
	bytes    *prometheus.GaugeVec
	oldest   *prometheus.GaugeVec
	attempts *prometheus.CounterVec
}

func newQueueMetrics() queueMetrics {
	return queueMetrics{
		messages: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tokengate_queue_messages", Help: "Stored messages of a queued route by state: pending (to be delivered), dead (dead letters).",
		}, []string{"route", "state"}),
		bytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tokengate_queue_bytes", Help: "Stored payload bytes of a queued route, dead letters included (bounded by queue.max_bytes in all).",
		}, []string{"route"}),
		oldest: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tokengate_queue_oldest_age_seconds", Help: "Age of a queued route's oldest pending message (0: none).",
		}, []string{"route"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokengate_queue_attempts_total", Help: "Delivery attempts by route and outcome: delivered, retry, dead, aborted (cut short by shutdown, left stored).",
		}, []string{"route", "outcome"}),
	}
}

func (q queueMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{q.messages, q.bytes, q.oldest, q.attempts}
}

// ObserveStored sets one route's stored counts (queue.Observer).
func (m *Metrics) ObserveStored(s queue.RouteStats, oldest time.Duration) {
	m.queue.messages.WithLabelValues(s.Route, string(queue.Pending)).Set(float64(s.Pending))
	m.queue.messages.WithLabelValues(s.Route, string(queue.Dead)).Set(float64(s.Dead))
	m.queue.bytes.WithLabelValues(s.Route).Set(float64(s.Bytes))
	m.queue.oldest.WithLabelValues(s.Route).Set(oldest.Seconds())
}

// ObserveAttempt counts one delivery attempt by outcome (queue.Observer).
func (m *Metrics) ObserveAttempt(route, outcome string) {
	m.queue.attempts.WithLabelValues(route, outcome).Inc()
}

var _ queue.Observer = (*Metrics)(nil)
