// Package gate is a running tokengate: the public listener (the proxy and
// the embedded Token URL), the admin listener (/healthz, /readyz,
// /metrics), the egress listeners and their token sources, and the
// reload machinery that swaps what a new configuration builds behind
// them without closing a socket.
//
// Its life:
//
//	g, err := gate.New(path, gate.Options{Logger: log, Version: version})
//	err = g.Start(ctx)    // bind, warm up, serve; watch the file
//	err = g.Reload(ctx, "file change") // or Refresh on SIGHUP
//	err = g.Shutdown(ctx) // drain within shutdown_grace
//
// A reload validates and builds the whole new configuration (receiving
// side, TLS settings, egress entries) before anything is swapped; a
// configuration that fails leaves the old one serving, and a replay store
// built for it is closed, never the running one. Requests in flight
// finish on the stack they started on. What survives a reload: the
// verification cache and verifiers while the issuers stay the same, the
// replay store while its settings do, every egress entry whose
// configuration did not change (and its token), every listener whose
// address stays.
//
// Shutdown stops accepting at once, lets requests in flight finish within
// shutdown_grace, and waits for a refresh-token refresh already at the
// vendor so the rotated token is stored. Signals are the command's: it
// calls Refresh on SIGHUP and Shutdown on SIGTERM.
package gate
