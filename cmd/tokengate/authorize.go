package main

// `tokengate authorize NAME --config FILE [--paste]`: an operator's one
// consent for an egress entry with grant: authorization_code.

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/egress"
	"github.com/tokengate/tokengate/internal/stack"
	"github.com/tokengate/tokengate/listener"
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
	return authorize(ctx, f.config, name, paste, stdin, stdout)
}

// authorize runs the consent flow for egress entry name and stores its
// refresh token. It prints the URL to open, the granted scope and the
// access token's expiry; never a token.
func authorize(ctx context.Context, path, name string, paste bool, stdin io.Reader, out io.Writer) error {
	cfg, err := config.Load(path, config.Options{})
	if err != nil {
		return err
	}
	var entry *config.Egress
	for i := range cfg.Egress {
		if cfg.Egress[i].Name == name {
			entry = &cfg.Egress[i]
		}
	}
	switch {
	case entry == nil:
		return fmt.Errorf("%s has no egress entry named %q", path, name)
	case !entry.Token.AuthorizationCode():
		return fmt.Errorf("egress %s uses grant %s: only grant: authorization_code needs a user's consent", name, entry.Token.Grant)
	}
	topts, err := stack.TokenOptions(entry.Token)
	if err != nil {
		return err
	}
	a, err := egress.NewAuthorization(stack.AuthCodeOptions(*entry, topts))
	if err != nil {
		return err
	}
	var code string
	if paste {
		code, err = pasted(a, entry.Token.RedirectURI, stdin, out)
	} else {
		code, err = listenForCode(ctx, a, entry.Token.RedirectURI, out)
	}
	if err != nil {
		return err
	}
	g, err := a.Exchange(ctx, code)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "authorized: refresh token stored in %s (mode 0600)\n", entry.Token.RefreshTokenFile)
	fmt.Fprintf(out, "  scope granted: %s\n", g.Scope)
	if !g.Expiry.IsZero() {
		fmt.Fprintf(out, "  first access token valid until %s; tokengate serve renews it from the refresh token\n", g.Expiry.UTC().Format(time.RFC3339))
	}
	return nil
}

const codeLifetimeNote = "The code in the redirect is short-lived and single-use (Deployteq: 60 minutes): finish within that time."

func pasted(a *egress.Authorization, redirect string, stdin io.Reader, out io.Writer) (string, error) {
	fmt.Fprintf(out, "Open this address in a browser, log in and consent:\n\n  %s\n\n", a.URL)
	fmt.Fprintf(out, "You will be sent to %s?code=…&state=…. Paste that whole address here (or only the code) and press Enter.\n%s\n> ", redirect, codeLifetimeNote)
	line, err := bufio.NewReader(io.LimitReader(stdin, 16<<10)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	code, bare, err := a.Code(line)
	if err != nil {
		return "", err
	}
	if bare {
		fmt.Fprintln(out, "note: a bare code carries no state, so it could not be checked against this run; paste the whole address to have it checked")
	}
	return code, nil
}

// listenForCode serves the loopback redirect_uri (RFC 8252 §7.3) until
// the browser arrives with the code, or ctx ends.
func listenForCode(ctx context.Context, a *egress.Authorization, redirect string, out io.Writer) (string, error) {
	u, err := url.Parse(redirect)
	if err != nil {
		return "", err
	}
	host := u.Hostname()
	if u.Scheme != "http" || !(host == "localhost" || net.ParseIP(host) != nil && net.ParseIP(host).IsLoopback()) || u.Port() == "" {
		return "", fmt.Errorf("redirect_uri %s is not a loopback http address with a port, so tokengate cannot receive the code itself: run with --paste and paste the address the browser is sent to", redirect)
	}
	type result struct {
		code string
		err  error
	}
	done := make(chan result, 1)
	path := u.Path
	if path == "" {
		path = "/"
	}
	var noted sync.Once
	callback := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Anything but the redirect itself is a browser's noise
		// (favicon.ico, a prefetch) or a page on another site: 404 or
		// 405, and the wait goes on.
		if r.URL.Path != path {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, "tokengate: the redirect is a GET", http.StatusMethodNotAllowed)
			return
		}
		code, err := a.FromRedirect(r.URL.Query())
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if errors.Is(err, egress.ErrStateMismatch) {
			// Not this run's redirect: any web page can make the browser
			// request this address (<img src=…/callback>). Refused, and
			// the real redirect is still awaited.
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, "tokengate: %v; still waiting for the redirect of this run\n", err)
			noted.Do(func() {
				fmt.Fprintln(out, "note: refused a request to the redirect address without this run's state (another run, or a web page); still waiting")
			})
			return
		}
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, "tokengate: %v\n", err)
		} else {
			fmt.Fprintln(w, "tokengate: consent received; you can close this window.")
		}
		select {
		case done <- result{code, err}:
		default:
		}
	})
	srv, err := listener.New(listener.Options{Name: "redirect_uri", Addr: net.JoinHostPort(host, u.Port()), Handler: callback})
	if err != nil {
		return "", fmt.Errorf("listening on the redirect_uri %s: %w", redirect, err)
	}
	fmt.Fprintf(out, "Open this address in a browser, log in and consent:\n\n  %s\n\nWaiting for the redirect to %s …\n%s\n", a.URL, redirect, codeLifetimeNote)
	srv.Start()
	defer func() {
		// Shutdown, not Close: the browser's answer ("consent received")
		// is written before the connection goes.
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	select {
	case r := <-done:
		return r.code, r.err
	case <-ctx.Done():
		return "", fmt.Errorf("no redirect received: %w", ctx.Err())
	}
}
