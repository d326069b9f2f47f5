package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestSIGHUPReloadsTheConfiguration: serve reloads on SIGHUP, even an
// unchanged file (the command handles the signal; the gate reloads).
func TestSIGHUPReloadsTheConfiguration(t *testing.T) {
	// While this channel is registered, a SIGHUP never ends the test
	// process, even one sent before serve registers its own.
	ignore := make(chan os.Signal, 1)
	signal.Notify(ignore, syscall.SIGHUP)
	defer signal.Stop(ignore)
	admin := freeAddr(t)
	path := writeConfig(t, "listen: 127.0.0.1:0\nadmin_listen: "+admin+"\nupstream: http://127.0.0.1:9\nroutes: [{ path: /a, public: true }]\n")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, path, zap.NewNop()) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(30 * time.Second):
			t.Error("serve did not return within 30s of its context's end")
		}
	}()
	reloaded := regexp.MustCompile(`(?m)^tokengate_config_reloads_total\{result="success"\} [1-9]`)
	eventually(t, "a reload after SIGHUP", func() bool {
		_ = syscall.Kill(os.Getpid(), syscall.SIGHUP)
		resp, err := http.Get("http://" + admin + "/metrics")
		if err != nil {
			return false // not listening yet
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return reloaded.Match(b)
	})
}
