// Package config loads tokengate's YAML configuration.
//
// Decoding is strict: an unknown key is an error naming its YAML path and
// line. Values may use ${VAR} (or ${VAR:-default}) to read the environment,
// and secrets may come from files (client_secret_file,
// client_secret_hash_file). Defaults are the Default… constants. Load returns
// every problem at once, each with its path, for example:
//
//	routes[2].require.issuers: unknown issuer "idp2" (line 31)
//
// Typical use:
//
//	cfg, err := config.Load("/etc/tokengate/config.yaml", config.Options{})
//	if err != nil {
//		log.Fatal(err) // lists every problem, one per line
//	}
package config
