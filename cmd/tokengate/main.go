// Command tokengate is an OAuth 2.0 bearer-token gate for webhook
// receivers: it verifies each request's token and forwards only authorized
// requests to the receiver; it can also be the senders' Token URL.
//
// Commands (dispatched in this file, implemented in commands.go):
//
//	tokengate serve --config FILE        run the gate (lifecycle.go: listeners, reload, drain)
//	tokengate check --config FILE        validate the config and probe every issuer (check.go)
//	tokengate quickstart [--config FILE] demo receiver + gate, no identity provider (quickstart.go)
//	tokengate probe [--url URL]          healthcheck for distroless containers
//	tokengate new-client NAME [--scopes] a Token URL client: secret once, YAML with its bcrypt hash
//	tokengate hash-secret                bcrypt hash of a secret read from stdin
//	tokengate check --token TOKEN        explain the gate's decision on one token (explain.go)
//	tokengate authorize NAME             one user's consent for an egress entry (authorize.go)
//	tokengate version                    the version stamped at build time
//
// compose.go builds everything one configuration needs (verifiers, cache,
// Token URL, handler) into a stack that a reload replaces. Every listener
// (public, admin, egress, quickstart's receiver, authorize's redirect) is
// a listener.Listener; listener.WatchFiles is the one fsnotify helper
// behind config and certificate reloads.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tokengate/tokengate/internal/diagnose"
)

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

const usage = `tokengate: OAuth 2.0 bearer-token gate for webhook receivers

Usage:
  tokengate serve   --config FILE   run the gate (config also from $TOKENGATE_CONFIG)
  tokengate check   --config FILE   validate the config and probe every issuer
  tokengate check   --config FILE --token TOKEN [--route "METHOD PATH"]
                                    explain what the gate would do with one token
                                    (--token - reads it from stdin); exit 0 = forwarded
  tokengate quickstart [--config FILE] [--receiver ADDR]
                                    demo: a receiver on 127.0.0.1:9000 that prints webhooks,
                                    and tokengate in front of it (default examples/quickstart.yaml,
                                    relative to the working directory: run it from the repository root)
  tokengate probe [--url URL]       exit 0 if URL (default the admin /readyz) answers 200,
                                    for container healthchecks
  tokengate version                 print the version
  tokengate new-client NAME [--scopes a,b]
                                    make a token-endpoint client: prints its secret once
                                    and the YAML with its bcrypt hash
  tokengate authorize NAME --config FILE [--paste]
                                    one user's consent for an egress entry with
                                    grant: authorization_code (PKCE); stores its refresh token
  tokengate hash-secret [--cost N]  print the bcrypt hash of a secret read from stdin

serve, check and authorize also take --log-format json|console and
--log-level debug|info|warn|error. Every command's --help lists its flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// errUsage marks a command-line mistake (exit status 2).
var errUsage = errors.New("usage")

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = cmdServe(args[1:], stderr)
	case "check":
		err = cmdCheck(args[1:], stdin, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "tokengate %s\n", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	case "new-client":
		err = cmdNewClient(args[1:], stdout, stderr)
	case "probe":
		err = cmdProbe(args[1:], stdout, stderr)
	case "quickstart":
		err = cmdQuickstart(args[1:], stdout, stderr)
	case "authorize":
		err = cmdAuthorize(args[1:], stdin, stdout, stderr)
	case "hash-secret":
		err = cmdHashSecret(args[1:], stdin, stdout, stderr)
	default:
		err = fmt.Errorf("%w: unknown command %q (see tokengate help)", errUsage, args[0])
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp): // --help printed the flags
		return 0
	case errors.Is(err, errUsage), errors.Is(err, diagnose.ErrUsage):
		fmt.Fprintln(stderr, err)
		return 2
	default:
		fmt.Fprintln(stderr, "tokengate:", err)
		return 1
	}
}

// commonFlags are shared by serve and check.
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

// newLogger builds the process logger: JSON by default, never global.
// newLogger builds the logger; buffered (serve) holds lines in memory up to
// a second, unbuffered (quickstart, a person watching) writes each at once.
func newLogger(format, level string, w io.Writer, buffered bool) (*zap.Logger, func(), error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: --log-level: %v", errUsage, err)
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
		return nil, nil, fmt.Errorf("%w: --log-format must be json or console", errUsage)
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
	log := zap.New(core, zap.WrapCore(func(c zapcore.Core) zapcore.Core { return flushOnWarn{c, ws} }))
	return log, func() { _ = ws.Stop() }, nil
}

// flushOnWarn flushes the buffered log after every entry at warn level or
// above, so problems are never held back in the buffer.
type flushOnWarn struct {
	zapcore.Core
	ws *zapcore.BufferedWriteSyncer
}

func (f flushOnWarn) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if f.Enabled(e.Level) {
		return ce.AddCore(e, f)
	}
	return ce
}

func (f flushOnWarn) With(fields []zapcore.Field) zapcore.Core {
	return flushOnWarn{f.Core.With(fields), f.ws}
}

func (f flushOnWarn) Write(e zapcore.Entry, fields []zapcore.Field) error {
	err := f.Core.Write(e, fields)
	if e.Level >= zapcore.WarnLevel {
		_ = f.ws.Sync()
	}
	return err
}
