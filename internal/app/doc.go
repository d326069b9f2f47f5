// Package app wires tokengate together from a configuration: verifiers,
// cache, proxy, token endpoint, admin server, reload and shutdown. It is the
// only package that knows every other one; cmd/tokengate parses flags and
// calls it, and so can the quickstart and the benchmark harness.
package app
