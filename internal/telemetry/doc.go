// Package telemetry holds tokengate's Prometheus metrics: one registry per
// process, created at start and kept across reloads, served on the admin
// listener's /metrics.
//
// The packages that do the work never see a Prometheus type. Each defines
// what it observes where it is used: proxy.Observer and
// proxy.SignatureObserver (requests, upstream latency, signature
// verdicts), egress.Observer (egress requests and 401 retries), and the
// plain func hooks of verifier, issuer and egress.Source options. A
// *Metrics implements those interfaces and hands out the hooks; the gate
// wires them.
//
// No label ever holds a token, subject, client id or other unbounded
// value: routes, issuers and egress entries are names from the
// configuration, decisions, paths and results are fixed sets, codes are
// HTTP status codes.
//
//	m := telemetry.New(telemetry.Options{Version: "v1.2.3"})
//	h, err := proxy.New(cfg, v, proxy.Options{Observer: m})
//	admin.Handle("GET /metrics", m.Handler())
package telemetry
