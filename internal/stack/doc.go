// Package stack builds everything one tokengate configuration needs on
// the receiving side: every issuer's verifier and the verification cache
// in front of them, the embedded Token URL and its signing keys, the
// signed-webhook verifiers and their replay store, the upstream transport
// and the proxy handler. The result is a Stack, the unit a reload swaps:
// requests in flight finish on the old one.
//
// A Builder outlives reloads and keeps what must survive them: the
// throw-away signing key, the replay store (and every message id it
// holds) while its settings stay the same, and, through Build's prev, the
// verifiers and cache of a configuration that verifies exactly as the new
// one does. Building makes no network call; a Stack's WarmUp fetches the
// issuers' keys in the background.
//
// A new replay store is pending until the stack built with it serves:
//
//	st, err := b.Build(cfg, cur)
//	if err != nil { b.AbortReplay(); return err } // the running store stays open
//	swap(st)
//	b.CommitReplay() // the old Redis client closes a minute later
//
// serve (internal/gate), check and check --token (internal/diagnose)
// build with the same Builder, so check refuses what serve would refuse
// and check --token decides with the real verifiers and handler. The
// calling side's token options are built here too (TokenOptions,
// AuthCodeOptions), the same for serve, check and authorize.
package stack
