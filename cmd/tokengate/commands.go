package main

// This file holds every command's implementation; main.go dispatches.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tokengate/tokengate/internal/diagnose"
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
	var token, route string
	f, fs, err := parseFlags("check", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&token, "token", "", `explain the gate's decision on this token ("-": read it from stdin)`)
		fs.StringVar(&route, "route", "", `with --token: the request to decide, "METHOD PATH" (default: the first route that requires a token)`)
	})
	if err != nil {
		return err
	}
	if fs.NArg() == 1 && route != "" && !strings.Contains(route, " ") {
		route += " " + fs.Arg(0) // --route POST /path, unquoted
	} else if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if route != "" && token == "" {
		return fmt.Errorf("%w: --route needs --token", errUsage)
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
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return err
	}
	// base64url has no '+' or '%', so senders that skip the RFC 6749
	// §2.3.1 form-encoding of Basic credentials still work.
	secret := base64.RawURLEncoding.EncodeToString(raw[:])
	hash, err := bcrypt.GenerateFromPassword([]byte(secret), *cost)
	if err != nil {
		return err
	}
	list := strings.FieldsFunc(*scopes, func(r rune) bool { return r == ',' || r == ' ' })
	quoted := make([]string, len(list))
	for i, s := range list {
		quoted[i] = fmt.Sprintf("%q", s)
	}
	fmt.Fprintf(stdout, "client_id:     %s\nclient_secret: %s\n\n", name, secret)
	fmt.Fprintln(stdout, "The secret is shown only this once: give it to the sender now.")
	fmt.Fprintln(stdout, "Add this client under token_endpoint.clients in your tokengate config:")
	fmt.Fprintf(stdout, "\n  - client_id: %s\n    client_secret_hash: %q\n    scopes: [%s]\n", name, hash, strings.Join(quoted, ", "))
	return nil
}

// cmdHashSecret prints the bcrypt hash of a secret read from stdin.
func cmdHashSecret(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hash-secret", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cost := fs.Int("cost", bcrypt.DefaultCost, "bcrypt cost")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	secret := strings.TrimRight(line, "\r\n")
	switch {
	case secret == "":
		return fmt.Errorf("%w: give the secret on stdin, e.g. printf %%s \"$SECRET\" | tokengate hash-secret", errUsage)
	case len(secret) > 72:
		return errors.New("bcrypt uses at most 72 bytes of a secret; use a shorter one")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(secret), *cost)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, string(hash))
	return nil
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
