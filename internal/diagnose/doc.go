// Package diagnose answers an operator's questions without serving:
//
//   - Check (`tokengate check`): is this configuration valid, and does
//     everything it names answer? Every problem of the file, every
//     issuer probed (discovery, JWKS, introspection credentials with a
//     random token), the certificates (expiry, key pair, server_name, an
//     upstream TLS handshake), a build exactly as serve builds (so check
//     refuses what serve would refuse), the Redis replay store, a token
//     requested for every egress entry, and warnings (a receiver not
//     listening, an introspection endpoint open to anyone, a client
//     certificate subject several CAs may issue).
//   - Token (`tokengate check --token`): what would the gate do with this
//     token? One request through the real verifiers, cache, route table
//     and handler (the upstream replaced by a recorder), then every value
//     the decision compared, one line each, ✓ or ✗. The token is never
//     printed; its fingerprint is.
//   - Webhook (`tokengate check --webhook`): what would the gate do with
//     this signed webhook? One raw HTTP request, read from a file as a
//     delivery log shows it, through the real route table, the route's
//     signature verifier and handler (the upstream and the replay store
//     replaced by recorders: nothing is claimed), then what the scheme
//     read, the exact content signed, how each secret is read, which
//     comparison matched, the timestamp against the tolerance, and the
//     cause of a refusal, found by trying the alternatives (a body
//     re-serialised, a secret read raw or decoded, another route's
//     secret, a clock off). No secret and no expected signature is
//     printed.
//   - Probe (`tokengate probe`): does a URL (the admin /readyz) answer 200?
//     A healthcheck for distroless images.
//
// What a diagnosis found is a finding: what it saw, and what is wrong
// with it. Check prints a summary line per component and lists the
// problems at the end; Token prints each comparison of the explanation.
//
// Nothing here listens, and no token or secret is ever printed.
package diagnose
