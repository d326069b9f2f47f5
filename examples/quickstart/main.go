// Command quickstart runs a whole webhook receiver on one machine with no
// identity provider: a demo "legacy" receiver on 127.0.0.1:9000 that prints
// every webhook it gets, and tokengate in front of it on :8080, serving the
// Token URL too (examples/quickstart.yaml).
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/app"
)

func main() {
	cfg := flag.String("config", "examples/quickstart.yaml", "tokengate configuration")
	recvAddr := flag.String("receiver", "127.0.0.1:9000", "address of the demo receiver")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *cfg, *recvAddr); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg, recvAddr string) error {
	ln, err := net.Listen("tcp", recvAddr)
	if err != nil {
		return fmt.Errorf("demo receiver: %w", err)
	}
	recv := &http.Server{Handler: http.HandlerFunc(printWebhook), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = recv.Serve(ln) }()
	defer recv.Close()
	fmt.Printf("demo receiver listening on %s (not reachable except through tokengate)\n", recvAddr)

	zcfg := zap.NewDevelopmentConfig()
	zcfg.DisableStacktrace = true
	log, err := zcfg.Build()
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	if err := app.Serve(ctx, cfg, log, "quickstart"); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// printWebhook is the "legacy receiver": it checks nothing and prints what
// tokengate forwarded, identity headers included.
func printWebhook(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var names []string
	for k := range r.Header {
		if strings.HasPrefix(k, "X-Auth-") || strings.HasPrefix(k, "X-Forwarded-") {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	fmt.Printf("\n>>> webhook received: %s %s\n", r.Method, r.URL.RequestURI())
	for _, k := range names {
		fmt.Printf("    %s: %s\n", k, r.Header.Get(k))
	}
	fmt.Printf("    body: %s\n", body)
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, "{\"received\":true}\n")
}
