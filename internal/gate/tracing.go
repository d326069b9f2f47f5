package gate

import (
	"context"
	"net/http"
	"reflect"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/telemetry"
)

// Exporting the spans still queued at shutdown gets what is left of
// shutdown_grace, within these bounds: at most tracingFlushMax, at least
// config.ShutdownOverrun (the drain may have used the whole grace).
const tracingFlushMax = 5 * time.Second

// newTracing sets up OpenTelemetry tracing from the configuration's
// telemetry.tracing block and the OTEL_* environment; nil when neither
// turns it on (then nothing is wrapped and no span is made).
func newTracing(cfg *config.Config, o Options, log *zap.Logger, version string) (*telemetry.Tracing, error) {
	tr, err := telemetry.NewTracing(context.Background(), telemetry.TracingOptions{
		Config: cfg.Telemetry.Tracing, Getenv: o.Getenv, Version: version, Logger: log,
	})
	if err != nil || tr == nil {
		return nil, err
	}
	s := tr.Settings
	endpoint := s.Endpoint
	if endpoint == "" {
		endpoint = "(from OTEL_EXPORTER_OTLP_*)"
	}
	var trusted []string
	if t := cfg.Telemetry.Tracing; t != nil {
		trusted = t.TrustIncoming
	}
	log.Info("tracing on: spans exported over OTLP", zap.String("protocol", s.Protocol), zap.String("endpoint", endpoint),
		zap.String("sampler", s.Sampler), zap.Float64("sampler_arg", s.SamplerArg), zap.Strings("trust_incoming", trusted))
	return tr, nil
}

// stopTracing exports the spans still queued, by graceEnd (the end of
// shutdown_grace) within the bounds above: a collector that hangs never
// holds the exit longer.
func (g *Gate) stopTracing(graceEnd time.Time) {
	if g.tr == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), flushTime(time.Until(graceEnd)))
	defer cancel()
	if err := g.tr.Shutdown(ctx); err != nil {
		g.log.Warn("tracing: spans still queued at shutdown were not exported", zap.Error(err))
	}
}

// flushTime is the final export's time, given what is left of the grace.
func flushTime(left time.Duration) time.Duration {
	return min(max(left, config.ShutdownOverrun), tracingFlushMax)
}

// trustApps continues every egress caller's trace.
func trustApps(*http.Request) bool { return true }

// tracingReloaded warns that a reload's tracing changes (other than
// trust_incoming, which the new stack applies) wait for a restart.
func tracingReloaded(log *zap.Logger, old, cur *config.Config) {
	a, b := tracingKey(old.Telemetry.Tracing), tracingKey(cur.Telemetry.Tracing)
	if !reflect.DeepEqual(a, b) {
		log.Warn("telemetry.tracing changes other than trust_incoming take effect only after a restart")
	}
}

func tracingKey(t *config.Tracing) *config.Tracing {
	if t == nil {
		return nil
	}
	c := *t
	c.TrustIncoming = nil
	return &c
}
