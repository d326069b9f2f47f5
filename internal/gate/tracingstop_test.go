package gate

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengate/tokengate/config"
)

// TestShutdownWithAHangingCollectorEndsSoonAfterTheGrace: tracing to a
// real OTLP/HTTP collector that takes each export and never answers; a
// few spans wait in the batch, and a request is still in flight at the
// receiver when the shutdown starts, so the drain uses the whole
// shutdown_grace. The final export is tried
// (the collector gets it) and Shutdown still returns within the grace
// plus config.ShutdownOverrun (asserted with a margin for a busy
// machine).
func TestShutdownWithAHangingCollectorEndsSoonAfterTheGrace(t *testing.T) {
	var exports atomic.Int64
	hang := make(chan struct{})
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		exports.Add(1)
		<-hang
	}))
	t.Cleanup(collector.Close)
	t.Cleanup(func() { close(hang) }) // before Close: it waits for the handlers
	release := make(chan struct{})
	var arrived atomic.Int64
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/open/slow" {
			return
		}
		arrived.Add(1)
		select {
		case <-release:
		case <-time.After(time.Minute):
		}
	}))
	t.Cleanup(recv.Close)
	t.Cleanup(func() { close(release) })
	const grace = 2 * time.Second
	path := write(t, t.TempDir(), "tokengate.yaml", fmt.Sprintf(`
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
shutdown_grace: %s
upstream: %s
routes: [{ name: open, path_prefix: /open, public: true }]
telemetry: { tracing: { endpoint: %s, sampler: always_on } }
`, grace, recv.URL, collector.URL))
	g, err := startWith(t.Context(), path, Options{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 { // spans waiting in the batch for the final export
		resp, err := http.Post(fmt.Sprintf("http://%s/open/fast/%d", g.Addr(), i), "text/plain", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	inFlight := make(chan error, 1)
	go func() {
		resp, err := http.Post("http://"+g.Addr()+"/open/slow", "text/plain", strings.NewReader("{}"))
		if err == nil {
			resp.Body.Close()
		}
		inFlight <- err
	}()
	eventually(t, "the request to be in flight at the receiver", func() bool { return arrived.Load() == 1 })

	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- g.Shutdown(context.Background()) }()
	bound := grace + config.ShutdownOverrun
	select {
	case err = <-done:
	case <-time.After(bound + 30*time.Second):
		t.Fatalf("Shutdown did not return within %v", bound+30*time.Second)
	}
	took := time.Since(start)
	t.Logf("Shutdown took %v (grace %v, overrun %v): %v", took, grace, config.ShutdownOverrun, err)
	if err == nil {
		t.Error("Shutdown reports no request cut off, though one was in flight past the grace")
	}
	if exports.Load() == 0 {
		t.Error("the final export never reached the collector: nothing was flushed")
	}
	if limit := bound + 2500*time.Millisecond; took > limit {
		t.Errorf("Shutdown took %v with a hanging collector, want under %v (grace %v + overrun %v + margin)", took, limit, grace, config.ShutdownOverrun)
	}
	select {
	case <-inFlight:
	case <-time.After(30 * time.Second):
		t.Fatal("the request in flight never ended")
	}
}
