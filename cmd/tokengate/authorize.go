package main

// `tokengate authorize NAME --config FILE [--paste]`: an operator's one
// consent for an egress entry with grant: authorization_code.

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tokengate/tokengate/internal/consent"
)

func cmdAuthorize(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var name string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	var paste bool
	var timeout time.Duration
	f, fs, err := parseFlags("authorize", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&paste, "paste", false, "read the redirected address (or the bare code) from stdin instead of listening on the loopback redirect_uri")
		fs.DurationVar(&timeout, "timeout", 10*time.Minute, "how long to wait for the consent")
	})
	if err != nil {
		return err
	}
	if name == "" && fs.NArg() == 1 {
		name = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if name == "" {
		return fmt.Errorf("%w: authorize needs the egress entry's NAME", errUsage)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return consent.Authorize(ctx, f.config, name, paste, stdin, stdout)
}
