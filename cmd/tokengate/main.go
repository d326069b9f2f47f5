// Command tokengate is an OAuth 2.0 bearer-token gate for webhook
// receivers: it verifies each request's token and forwards only authorized
// requests to the receiver; it can also be the senders' Token URL, and
// the calling side that obtains vendor tokens.
//
// This command only parses flags and dispatches; each command calls a
// package (docs/architecture.md has the whole map):
//
//	tokengate serve --config FILE        run the gate (internal/gate; SIGHUP and SIGTERM here, serve.go)
//	tokengate check --config FILE        validate the config and probe every issuer (internal/diagnose)
//	tokengate check --token TOKEN        explain the gate's decision on one token (internal/diagnose)
//	tokengate check --webhook FILE       explain the gate's decision on one captured signed webhook (internal/diagnose)
//	tokengate quickstart [--config FILE] demo receiver (internal/quickstart) + gate, no identity provider
//	tokengate probe [--url URL]          healthcheck for distroless containers (internal/diagnose)
//	tokengate new-client NAME [--scopes] a Token URL client: secret once, YAML with its bcrypt hash (internal/clientsecret)
//	tokengate hash-secret                bcrypt hash of a secret read from stdin (internal/clientsecret)
//	tokengate authorize NAME             one user's consent for an egress entry (internal/consent)
//	tokengate queue COMMAND [ID]         the delivery queue's stored messages (internal/queuecli)
//	tokengate version                    the version stamped at build time
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/tokengate/tokengate/internal/diagnose"
	"github.com/tokengate/tokengate/internal/queuecli"
)

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

const usage = `tokengate: OAuth 2.0 bearer-token gate for webhook receivers

Usage:
  tokengate serve   --config FILE   run the gate (config also from $TOKENGATE_CONFIG)
  tokengate check   --config FILE   validate the config and probe every issuer
  tokengate check   --config FILE --token TOKEN [--route "METHOD PATH"]
                                    explain what the gate would do with one token
                                    (--token - reads it from stdin); exit 0 = forwarded
  tokengate check   --config FILE --webhook REQUEST_FILE [--route "METHOD PATH"]
                                    explain what the gate would do with one signed webhook,
                                    a raw HTTP request as a delivery log shows it (- = stdin):
                                    signed content, secrets (never shown), timestamp, cause;
                                    nothing is claimed; exit 0 = forwarded
  tokengate quickstart [--config FILE] [--receiver ADDR]
                                    demo: a receiver on 127.0.0.1:9000 that prints webhooks,
                                    and tokengate in front of it (default examples/quickstart.yaml,
                                    relative to the working directory: run it from the repository root)
  tokengate probe [--url URL]       exit 0 if URL (default the admin /readyz) answers 200,
                                    for container healthchecks
  tokengate version                 print the version
  tokengate new-client NAME [--scopes a,b]
                                    make a token-endpoint client: prints its secret once
                                    and the YAML with its bcrypt hash
  tokengate authorize NAME --config FILE [--paste]
                                    one user's consent for an egress entry with
                                    grant: authorization_code (PKCE); stores its refresh token
  tokengate hash-secret [--cost N]  print the bcrypt hash of a secret read from stdin
  tokengate queue list|show ID|retry ID|retry --dead|drop ID|stats --config FILE
                                    the delivery queue's stored messages (list: [--route R]
                                    [--state pending|dead] [--limit N]); through the running
                                    gate, or on the store when none runs

serve, check and authorize also take --log-format json|console and
--log-level debug|info|warn|error. Every command's --help lists its flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// errUsage marks a command-line mistake (exit status 2).
var errUsage = errors.New("usage")

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = cmdServe(args[1:], stderr)
	case "check":
		err = cmdCheck(args[1:], stdin, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "tokengate %s\n", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	case "new-client":
		err = cmdNewClient(args[1:], stdout, stderr)
	case "probe":
		err = cmdProbe(args[1:], stdout, stderr)
	case "quickstart":
		err = cmdQuickstart(args[1:], stdout, stderr)
	case "authorize":
		err = cmdAuthorize(args[1:], stdin, stdout, stderr)
	case "hash-secret":
		err = cmdHashSecret(args[1:], stdin, stdout, stderr)
	case "queue":
		err = cmdQueue(args[1:], stdout, stderr)
	default:
		err = fmt.Errorf("%w: unknown command %q (see tokengate help)", errUsage, args[0])
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp): // --help printed the flags
		return 0
	case errors.Is(err, errUsage), errors.Is(err, diagnose.ErrUsage), errors.Is(err, queuecli.ErrUsage):
		fmt.Fprintln(stderr, err)
		return 2
	default:
		fmt.Fprintln(stderr, "tokengate:", err)
		return 1
	}
}
