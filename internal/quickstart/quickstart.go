package quickstart

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/listener"
)

// Receiver checks the quickstart's files (cfg and the certificate it
// names) and starts the demo receiver on addr, printing each webhook to
// out. Close the returned listener to stop it.
func Receiver(cfg, addr string, out io.Writer) (*listener.Listener, error) {
	if err := checkFiles(cfg); err != nil {
		return nil, err
	}
	recv, err := listener.New(listener.Options{Name: "demo receiver", Addr: addr, Handler: printWebhook(out)})
	if err != nil {
		return nil, fmt.Errorf("demo receiver: %w", err)
	}
	recv.Start()
	fmt.Fprintf(out, "demo receiver listening on %s: it stands in for your webhook handler and checks nothing; tokengate in front of it does\n", addr)
	return recv, nil
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

// checkFiles explains, before anything starts, what a newcomer must do
// when the quickstart's files are not where it looks: the config is found
// relative to the working directory, and the HTTPS variant needs a
// certificate made first.
func checkFiles(cfg string) error {
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
