package consent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/tokengate/tokengate/egress"
	"github.com/tokengate/tokengate/listener"
)

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
