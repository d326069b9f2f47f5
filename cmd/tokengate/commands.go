package main

import (
	"context"
	"io"
	"os/signal"
	"syscall"
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
	return serve(ctx, f.config, log)
}

func cmdCheck(args []string, stdout, stderr io.Writer) error {
	f, _, err := parseFlags("check", args, stderr)
	if err != nil {
		return err
	}
	return check(context.Background(), f.config, stdout)
}
