// Package egress is tokengate's calling side: it gets an OAuth 2.0 access
// token with the client credentials grant from a vendor's Token URL, keeps
// it fresh, and injects it into an application's outbound requests.
//
// The application sends plain HTTP to a local listener; a Handler forwards
// each request to the configured upstream with "Authorization: Bearer" set
// from a Source. A Source holds one token per egress entry:
//
//   - one token request at a time, shared by every caller (singleflight);
//   - a background refresh at 80 % of the token's lifetime (or
//     RefreshBefore ahead of its expiry), so callers do not wait for a token
//     in steady state and no request leaves with an expired one;
//   - callers that arrive while no valid token exists wait, bounded, and
//     then get ErrUnavailable with the cause;
//   - failures are retried with exponential backoff and jitter, honouring a
//     429's Retry-After, and the old token stays in use until it expires.
//
// Token requests come in the four shapes the vendors document: credentials
// in a Basic header or in a form body (golang.org/x/oauth2 builds both),
// a JSON body (MyParcel.com) and multipart/form-data with Basic credentials
// (Akamai's curl -F). Responses are parsed as vendors send them:
// "expires_in" as a number or a string, "token_type" in any case, and a
// JWT's "exp" when "expires_in" is absent.
package egress
