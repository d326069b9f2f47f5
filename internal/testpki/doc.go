// Package testpki is a test certificate authority that issues real
// certificates (ECDSA P-256) into a test's temporary directory, for the
// tests of the gate's listeners and of `tokengate check`.
package testpki
