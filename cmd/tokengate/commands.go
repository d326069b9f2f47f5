package main

// Each command: its flags, then one call to the package that does it.

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tokengate/tokengate/internal/clientsecret"
	"github.com/tokengate/tokengate/internal/consent"
	"github.com/tokengate/tokengate/internal/diagnose"
	"github.com/tokengate/tokengate/internal/quickstart"
)

func cmdServe(args []string, stderr io.Writer) error {
	f, _, err := parseFlags("serve", args, stderr)
	if err != nil {
		return err
	}
	log, stopLog, err := newLogger(f.logFormat, f.logLevel, stderr, true)
	if err != nil {
		return err
	}
	defer stopLog() // flushes what is buffered
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return serve(ctx, f.config, log)
}

func cmdCheck(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var token, webhook, route string
	f, fs, err := parseFlags("check", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&token, "token", "", `explain the gate's decision on this token ("-": read it from stdin)`)
		fs.StringVar(&webhook, "webhook", "", `explain the gate's decision on the raw HTTP request in this file ("-": stdin), a signed webhook as a delivery log or capture shows it`)
		fs.StringVar(&route, "route", "", `with --token: the request to decide, "METHOD PATH" (default: the first route that requires a token); with --webhook: replaces the file's request line`)
	})
	if err != nil {
		return err
	}
	if fs.NArg() == 1 && route != "" && !strings.Contains(route, " ") {
		route += " " + fs.Arg(0) // --route POST /path, unquoted
	} else if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if route != "" && token == "" && webhook == "" {
		return fmt.Errorf("%w: --route needs --token or --webhook", errUsage)
	}
	if token != "" && webhook != "" {
		return fmt.Errorf("%w: --token and --webhook explain one request each: give one", errUsage)
	}
	if webhook != "" {
		return checkWebhook(f.config, webhook, route, stdin, stdout)
	}
	if token == "-" {
		line, err := bufio.NewReader(io.LimitReader(stdin, 64<<10)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("reading the token from stdin: %w", err)
		}
		token = line
	}
	if token != "" {
		return diagnose.Token(context.Background(), f.config, token, route, stdout)
	}
	return diagnose.Check(context.Background(), f.config, stdout)
}

// checkWebhook is check --webhook: the request file (or stdin) through
// the gate's real route table and signature verifiers.
func checkWebhook(config, file, route string, stdin io.Reader, stdout io.Writer) error {
	in, name := stdin, "stdin"
	if file != "-" {
		fh, err := os.Open(file)
		if err != nil {
			return fmt.Errorf("%w: --webhook: %w", errUsage, err)
		}
		defer fh.Close()
		in, name = fh, file
	}
	return diagnose.Webhook(context.Background(), config, in, name, route, stdout)
}

// cmdQuickstart runs a whole webhook receiver on one machine with no
// identity provider: a demo "legacy" receiver that prints every webhook it
// gets, and tokengate in front of it serving the Token URL too
// (examples/quickstart.yaml).
func cmdQuickstart(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("quickstart", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := fs.String("config", "examples/quickstart.yaml", "tokengate configuration")
	recvAddr := fs.String("receiver", "127.0.0.1:9000", "address of the demo receiver (the config's upstream)")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return runQuickstart(ctx, *cfg, *recvAddr, stdout, stderr)
}

// runQuickstart starts the demo receiver, then serves cfg in front of it
// with a console log, until ctx ends.
func runQuickstart(ctx context.Context, cfg, recvAddr string, stdout, stderr io.Writer) error {
	recv, err := quickstart.Receiver(cfg, recvAddr, stdout)
	if err != nil {
		return err
	}
	defer recv.Close()
	log, _, err := newLogger("console", "info", stderr, false)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, log)
}

// cmdAuthorize is `tokengate authorize NAME --config FILE [--paste]`: an
// operator's one consent for an egress entry with grant:
// authorization_code.
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

// cmdNewClient makes a client for the embedded token endpoint: a random
// 32-byte secret, printed once, and the YAML holding only its bcrypt hash.
func cmdNewClient(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("new-client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scopes := fs.String("scopes", "webhooks:write", "comma- or space-separated scopes the client may be granted")
	cost := fs.Int("cost", bcrypt.DefaultCost, "bcrypt cost")
	// Allow the name before or after the flags.
	var name string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if name == "" && fs.NArg() > 0 {
		name = fs.Arg(0)
	}
	if name == "" || strings.ContainsAny(name, ": \t\n") {
		return fmt.Errorf("%w: tokengate new-client NAME [--scopes a,b] (NAME without spaces or ':')", errUsage)
	}
	return clientsecret.NewClient(name, *scopes, *cost, stdout)
}

// cmdHashSecret prints the bcrypt hash of a secret read from stdin.
func cmdHashSecret(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hash-secret", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cost := fs.Int("cost", bcrypt.DefaultCost, "bcrypt cost")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	err := clientsecret.Hash(stdin, *cost, stdout)
	if errors.Is(err, clientsecret.ErrNoSecret) {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	return err
}

// cmdProbe GETs a URL (default the admin /readyz) and exits 0 on 200: a
// healthcheck for distroless images, which have no curl.
func cmdProbe(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:9090/readyz", "URL that must answer 200")
	timeout := fs.Duration("timeout", 3*time.Second, "request timeout")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	return diagnose.Probe(*url, *timeout, stdout)
}
