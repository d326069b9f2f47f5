package main

import (
	"context"
	"io"
	"os/signal"
	"syscall"

	"github.com/tokengate/tokengate/internal/app"
)

func cmdServe(args []string, stderr io.Writer) error {
	f, _, err := parseFlags("serve", args, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(f.logFormat, f.logLevel, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return app.Serve(ctx, f.config, log, version)
}

func cmdCheck(args []string, stdout, stderr io.Writer) error {
	f, _, err := parseFlags("check", args, stderr)
	if err != nil {
		return err
	}
	return app.Check(context.Background(), f.config, stdout)
}
