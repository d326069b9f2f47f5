package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/tokengate/tokengate/internal/queuecli"
)

// cmdQueue is `tokengate queue COMMAND [ID] [flags]`; flags may come
// before or after the message id.
func cmdQueue(args []string, stdout, stderr io.Writer) error {
	sub := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	var o queuecli.Options
	fs := flag.NewFlagSet("queue "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", os.Getenv("TOKENGATE_CONFIG"), "configuration file (default $TOKENGATE_CONFIG)")
	fs.StringVar(&o.Route, "route", "", "list, retry --dead: only this queued route")
	fs.StringVar(&o.State, "state", "pending", "list: pending or dead")
	fs.IntVar(&o.Limit, "limit", 50, "list: at most this many messages per route")
	fs.BoolVar(&o.Dead, "dead", false, "retry: every dead letter (of --route, or of every route)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: tokengate queue COMMAND [ID] --config FILE [flags]\nCommands: %s\n", queuecli.Commands)
		fs.PrintDefaults()
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return fmt.Errorf("%w: %w", errUsage, err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	if *config == "" {
		return fmt.Errorf("%w: queue needs --config FILE (or TOKENGATE_CONFIG)", errUsage)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return queuecli.Run(ctx, *config, sub, pos, o, stdout)
}
