// Package proxy is tokengate's public http.Handler. Open this file first:
// a request travels through it in this order (handler.go unless named).
//
//  0. Client address (forwarding.go, ClientIP): from a trusted proxy,
//     the X-Forwarded-For entry naming the client must be an address
//     (ip, ip:port, [ipv6], [ipv6]:port) → else 400 before anything else.
//  1. Path checks (request.go, checkPath): a decoded slash or backslash
//     (%2F, %5C), NUL, or a path parameter (";", also as %3B) → 400.
//  2. Route (routes.go, match): the percent-decoded path is cleaned ("..",
//     ".", "//") and matched against the routes in order, with method and
//     host; no match → 404. The cleaned path is also what is forwarded.
//  3. Query (request.go, tokenInQuery): access_token in any case or
//     spelling → 400.
//  4. Upgrade (request.go, allowUpgrade): refused → 400 unless the route
//     sets websocket: true (and then only WebSocket; h2c never).
//  5. Public routes skip to step 9. Client certificate (routes.go,
//     allowClientCert) when the route requires one → 403.
//  6. Bearer token (bearer.go): Authorization header only, RFC 6750
//     syntax; none → 401 with a bare challenge, malformed → 400.
//  7. Verify (Verifier.VerifyFor, the cache in package verifier) with the
//     route's issuers only: invalid → 401 invalid_token, identity provider
//     unreachable or at its bound → 503 with Retry-After.
//  8. Policy (routes.go, allow): issuer, scopes, claims → 403
//     insufficient_scope. Runs on every request; only step 7 is cached.
//     Then the route's rate_limit (ratelimit.go): past it → 429; a token
//     naming no client id nor sub on a per-sender limit → 403.
//  9. Forward (forward, rewrite): body size limit (413) and read deadline
//     (408), header hygiene (headers.go: identity namespace, spoofable
//     headers, Authorization; identity headers set from the token),
//     X-Forwarded-* (forwarding.go: trusted proxies only), then
//     httputil.ReverseProxy with the pooled transport (transport.go). An
//     upgraded tunnel is closed when its token expires.
//
// Every denial is an error wrapped with %w and mapped to its status in one
// place, errors.go (classify); answers carry an RFC 6750 challenge and a
// JSON body that never echoes the token. Denied requests are answered at
// once, without reading their body.
package proxy
