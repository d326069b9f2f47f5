// Package consent is `tokengate authorize`: an operator's one consent for
// an egress entry with grant: authorization_code (RFC 6749 §4.1 with
// PKCE). Authorize prints the vendor's authorization URL, receives the
// code (on the loopback redirect_uri, RFC 8252 §7.3, or pasted), checks
// its state, exchanges it and stores the refresh token in the entry's
// refresh_token_file (mode 0600), from which `tokengate serve` renews
// the access token.
//
// The loopback listener takes only this run's redirect: a request without
// its state (any web page can make the browser request the address) is
// refused with 400 and the real one still awaited; favicon.ico and other
// noise get 404 or 405. It prints the URL to open, the granted scope and
// the access token's expiry; never a token.
package consent
