package gate

import (
	"errors"
	"net/http"

	"github.com/tokengate/tokengate/internal/status"
)

// adminHandler serves /healthz, /readyz, /metrics and the status page
// (/ and /status.json) on the admin port listening at adminListen.
func (g *Gate) adminHandler(adminListen string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := g.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", g.m.Handler())
	mux.Handle("GET /{$}", status.SameHost(adminListen, g.statusC.Page()))
	mux.Handle("GET /status.json", status.SameHost(adminListen, g.statusC.JSON()))
	return mux
}

// Ready reports why the gate cannot serve every request yet, or nil: it
// is shutting down, an issuer's keys are not fetched yet, the Redis
// replay store does not answer, the queue store cannot be written (a
// receiver that is down is no reason), or an egress entry that needs a token for
// readiness has none.
func (g *Gate) Ready() error {
	if g.draining.Load() {
		return errors.New("shutting down")
	}
	if err := g.cur.Load().Ready(); err != nil {
		return err
	}
	if q := g.queue.Load(); q != nil {
		if err := q.ready(); err != nil {
			return err
		}
	}
	return g.eg.ready()
}
