// Package issuer is tokengate's optional embedded Token URL: an OAuth 2.0
// client_credentials token endpoint (RFC 6749 §4.4) that issues RFC 9068 JWT
// access tokens, with RFC 8414 / OpenID discovery metadata and a JWKS.
//
// It accepts every request shape the webhook senders use: credentials in
// HTTP Basic or in the body; form, JSON or multipart bodies. Secrets are
// bcrypt hashes; comparisons are capped in number and rate-limited per
// client and per address.
//
//	key, _ := issuer.GenerateKey("ES256")
//	srv, _ := issuer.New(issuer.Options{
//		Issuer: "https://hooks.example.com", Path: "/oauth2/token",
//		Audience: "https://hooks.example.com", Keys: []*issuer.Key{key},
//		TokenTTL: time.Hour, Clients: clients,
//		PerClientRate: 5, PerClientBurst: 10, PerIPRate: 10, PerIPBurst: 20,
//	})
//	mux.Handle("/oauth2/token", srv)
package issuer
