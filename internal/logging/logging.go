package logging

import (
	"errors"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New builds a logger writing to w in format ("json" or "console") at
// level ("debug", "info", "warn" or "error"). buffered (serve) holds
// lines in memory up to a second; unbuffered (quickstart, a person
// watching) writes each at once. The func returned flushes what is
// buffered (call it at exit).
func New(format, level string, w io.Writer, buffered bool) (*zap.Logger, func(), error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, nil, fmt.Errorf("--log-level: %v", err)
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.TimeKey = "ts"
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	switch format {
	case "json":
		enc = zapcore.NewJSONEncoder(encCfg)
	case "console":
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	default:
		return nil, nil, errors.New("--log-format must be json or console")
	}
	// The access log writes a line per request: buffered, a line costs an
	// encode and a copy, not a write(2). Flushed every second, when the
	// buffer fills, and by the returned stop (shutdown); errors and
	// warnings are flushed at once.
	if !buffered {
		return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), lvl)), func() {}, nil
	}
	ws := &zapcore.BufferedWriteSyncer{WS: zapcore.AddSync(w), Size: 256 << 10, FlushInterval: time.Second}
	core := zapcore.NewCore(enc, ws, lvl)
	logger := zap.New(core, zap.WrapCore(func(c zapcore.Core) zapcore.Core { return flushOnWarn{c, ws} }))
	return logger, func() { _ = ws.Stop() }, nil
}

// flushOnWarn flushes the buffered log after every entry at warn level or
// above, so problems are never held back in the buffer.
type flushOnWarn struct {
	zapcore.Core
	ws *zapcore.BufferedWriteSyncer
}

// Check adds this core to entries it logs, so that Write sees them.
func (f flushOnWarn) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if f.Enabled(e.Level) {
		return ce.AddCore(e, f)
	}
	return ce
}

// With keeps the flushing on the derived core.
func (f flushOnWarn) With(fields []zapcore.Field) zapcore.Core {
	return flushOnWarn{f.Core.With(fields), f.ws}
}

// Write logs the entry and flushes the buffer at warn level and above.
func (f flushOnWarn) Write(e zapcore.Entry, fields []zapcore.Field) error {
	err := f.Core.Write(e, fields)
	if e.Level >= zapcore.WarnLevel {
		_ = f.ws.Sync()
	}
	return err
}
