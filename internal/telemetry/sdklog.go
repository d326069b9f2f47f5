package telemetry

import (
	"time"

	"github.com/go-logr/logr"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

// sdkLog is the OpenTelemetry SDK's internal logger (otel.SetLogger) in
// place of its default, which prints to stderr in a format of its own
// (breaking --log-format json) with the key-values of each message: an
// endpoint URL with its credentials, an OTLP header's value. It passes
// the SDK's errors and warnings to zap as "opentelemetry: MESSAGE", the
// message alone (a constant in the SDK's code), never the error's text or
// the key-values, at most one line per 10 seconds; info and debug
// messages are dropped.
type sdkLog struct {
	log   *zap.Logger
	every *rate.Limiter
}

// sdkLogger is the logr.Logger of log (nil: the SDK logs nothing).
func sdkLogger(log *zap.Logger) logr.Logger {
	if log == nil {
		return logr.Discard()
	}
	return logr.New(&sdkLog{log: log.Named("tracing"), every: rate.NewLimiter(rate.Every(10*time.Second), 1)})
}

// Init is part of logr.LogSink.
func (*sdkLog) Init(logr.RuntimeInfo) {}

// Enabled passes errors and warnings (the SDK's V(1)).
func (*sdkLog) Enabled(level int) bool { return level <= 1 }

// Info logs a warning's message, without its key-values.
func (s *sdkLog) Info(_ int, msg string, _ ...any) { s.write(msg) }

// Error logs an error's message, without the error or its key-values.
func (s *sdkLog) Error(_ error, msg string, _ ...any) { s.write(msg) }

// WithValues drops the values.
func (s *sdkLog) WithValues(...any) logr.LogSink { return s }

// WithName keeps the one name.
func (s *sdkLog) WithName(string) logr.LogSink { return s }

func (s *sdkLog) write(msg string) {
	if s.every.Allow() {
		s.log.Warn("opentelemetry: " + msg)
	}
}
