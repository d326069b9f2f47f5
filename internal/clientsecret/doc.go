// Package clientsecret makes the secrets of the embedded Token URL's
// clients: `tokengate new-client` (a random secret, shown once, and the
// configuration lines holding only its bcrypt hash) and `tokengate
// hash-secret` (the bcrypt hash of a secret an operator chose).
package clientsecret
