// Package signature verifies signed webhooks: the HMAC schemes of GitHub
// (X-Hub-Signature-256), Stripe (Stripe-Signature), Shopify
// (X-Shopify-Hmac-Sha256) and the Standard Webhooks specification
// (webhook-id, webhook-timestamp, webhook-signature; symmetric "v1" and
// Ed25519 "v1a"), each exactly as its sender documents it, with
// constant-time comparison, a timestamp tolerance where the scheme signs
// one, and replay protection through a Store: in memory for one instance,
// Redis when several replicas serve one receiver.
//
// A Verifier judges a request's headers alone (CheckHeaders: before any of
// the body is read, so that a signature that cannot be right costs no
// memory) and then with its complete body (Verify); reading the body
// (bounded) and mapping errors to HTTP answers is the caller's job.
package signature
