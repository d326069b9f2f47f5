package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/logging"
)

// commonFlags are shared by serve, check and authorize.
type commonFlags struct {
	config    string
	logFormat string
	logLevel  string
}

func parseFlags(name string, args []string, stderr io.Writer, extra ...func(*flag.FlagSet)) (*commonFlags, *flag.FlagSet, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	for _, f := range extra {
		f(fs)
	}
	c := &commonFlags{}
	fs.StringVar(&c.config, "config", os.Getenv("TOKENGATE_CONFIG"), "configuration file (default $TOKENGATE_CONFIG)")
	fs.StringVar(&c.logFormat, "log-format", "json", "log format: json or console")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	if c.config == "" {
		return nil, nil, fmt.Errorf("%w: %s needs --config FILE (or TOKENGATE_CONFIG)", errUsage, name)
	}
	return c, fs, nil
}

// newLogger builds the process logger (internal/logging); a bad
// --log-format or --log-level is a usage error.
func newLogger(format, level string, w io.Writer, buffered bool) (*zap.Logger, func(), error) {
	log, stop, err := logging.New(format, level, w, buffered)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	return log, stop, nil
}
