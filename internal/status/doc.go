// Package status is the gate's status page on the admin listener: a
// Snapshot of what the gate knows about itself (issuers and their keys,
// routes and their recent requests, egress tokens, the replay store, the
// delivery queue, the last reload), served as server-rendered HTML at /
// and as JSON at /status.json.
//
// A Snapshot never holds a token, a secret, a refresh token, a signature
// or a key: only names, key ids, counts, times and error texts that their
// owners already redacted, which Snapshot.Redact scrubs once more of every
// configured secret. The page loads nothing (no script, no external
// asset) and is sent with a Content-Security-Policy that allows only its
// own inline style, by hash.
//
// The gate implements Source and counts requests into a Traffic:
//
//	tr := status.NewTraffic(nil)
//	m := telemetry.New(telemetry.Options{Recent: tr})
//	mux.Handle("GET /{$}", status.Page(src))
//	mux.Handle("GET /status.json", status.JSON(src))
package status
