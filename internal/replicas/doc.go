// Package replicas holds only tests: several real tokengate processes
// (the binary, built by the test) sharing egress tokens through one real
// redis-server, against vendor token endpoints that count every request
// and, for the authorization-code grant, revoke the whole grant when a
// refresh token is used twice.
package replicas
