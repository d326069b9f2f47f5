package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/listener"
)

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
	return quickstart(ctx, *cfg, *recvAddr, stdout, stderr)
}

func quickstart(ctx context.Context, cfg, recvAddr string, stdout, stderr io.Writer) error {
	if err := quickstartFiles(cfg); err != nil {
		return err
	}
	recv, err := listener.New(listener.Options{Name: "demo receiver", Addr: recvAddr, Handler: printWebhook(stdout)})
	if err != nil {
		return fmt.Errorf("demo receiver: %w", err)
	}
	recv.Start()
	defer recv.Close()
	fmt.Fprintf(stdout, "demo receiver listening on %s: it stands in for your webhook handler and checks nothing; tokengate in front of it does\n", recvAddr)
	log, _, err := newLogger("console", "info", stderr, false)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, log)
}

// printWebhook is the "legacy receiver": it checks nothing and prints what
// tokengate forwarded, identity headers included.
func printWebhook(out io.Writer) http.HandlerFunc {
	var mu sync.Mutex
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		mu.Lock()
		defer mu.Unlock()
		var names []string
		for k := range r.Header {
			if strings.HasPrefix(k, "X-Auth-") || strings.HasPrefix(k, "X-Forwarded-") {
				names = append(names, k)
			}
		}
		sort.Strings(names)
		fmt.Fprintf(out, "\n>>> webhook received: %s %s\n", r.Method, r.URL.RequestURI())
		for _, k := range names {
			fmt.Fprintf(out, "    %s: %s\n", k, r.Header.Get(k))
		}
		fmt.Fprintf(out, "    body: %s\n", body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, "{\"received\":true}\n")
	}
}

// quickstartFiles explains, before anything starts, what a newcomer must
// do when the quickstart's files are not where it looks: the config is
// found relative to the working directory, and the HTTPS variant needs a
// certificate made first.
func quickstartFiles(cfg string) error {
	if _, err := os.Stat(cfg); err != nil {
		wd, _ := os.Getwd()
		return fmt.Errorf("%s not found in %s: run the quickstart from the repository root (go run ./cmd/tokengate quickstart), or pass --config PATH", cfg, wd)
	}
	c, err := config.Load(cfg, config.Options{})
	if err != nil || c.TLS == nil {
		return nil // serve reports every problem of the config itself
	}
	for _, f := range []string{c.TLS.CertFile, c.TLS.KeyFile} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%s needs a certificate it cannot find (%s): make one with the openssl command at the top of %s, then start the quickstart again", cfg, f, cfg)
		}
	}
	return nil
}
