package consent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/egress"
	"github.com/tokengate/tokengate/internal/redisconn"
	"github.com/tokengate/tokengate/internal/stack"
)

// Authorize runs the consent flow for the egress entry name of the
// configuration at path and stores its refresh token: with paste, the
// address the browser was sent to (or the bare code) is read from stdin;
// without, the loopback redirect_uri is served until the browser arrives
// or ctx ends. It prints the URL to open, the granted scope and the
// access token's expiry; never a token.
func Authorize(ctx context.Context, path, name string, paste bool, stdin io.Reader, out io.Writer) error {
	cfg, err := config.Load(path, config.Options{})
	if err != nil {
		return err
	}
	var entry *config.Egress
	for i := range cfg.Egress {
		if cfg.Egress[i].Name == name {
			entry = &cfg.Egress[i]
		}
	}
	switch {
	case entry == nil:
		return fmt.Errorf("%s has no egress entry named %q", path, name)
	case !entry.Token.AuthorizationCode():
		return fmt.Errorf("egress %s uses grant %s: only grant: authorization_code needs a user's consent", name, entry.Token.Grant)
	}
	topts, err := stack.TokenOptions(entry.Token)
	if err != nil {
		return err
	}
	ao := stack.AuthCodeOptions(*entry, topts)
	if entry.Token.SharedOn() {
		c, err := redisconn.New(cfg.Redis)
		if err != nil {
			return err
		}
		defer c.Close()
		if ao.Shared, err = stack.SharedStore(*entry, cfg.Redis, c, topts, nil, nil); err != nil {
			return err
		}
	}
	a, err := egress.NewAuthorization(ao)
	if err != nil {
		return err
	}
	var code string
	if paste {
		code, err = pasted(a, entry.Token.RedirectURI, stdin, out)
	} else {
		code, err = listenForCode(ctx, a, entry.Token.RedirectURI, out)
	}
	if err != nil {
		return err
	}
	g, err := a.Exchange(ctx, code)
	if err != nil {
		return err
	}
	switch {
	case entry.Token.SharedOn() && entry.Token.RefreshTokenFile != "":
		fmt.Fprintf(out, "authorized: refresh token stored in Redis (encrypted, shared by the replicas) and in %s (mode 0600)\n", entry.Token.RefreshTokenFile)
	case entry.Token.SharedOn():
		fmt.Fprintln(out, "authorized: refresh token stored in Redis (encrypted, shared by the replicas)")
	default:
		fmt.Fprintf(out, "authorized: refresh token stored in %s (mode 0600)\n", entry.Token.RefreshTokenFile)
	}
	fmt.Fprintf(out, "  scope granted: %s\n", g.Scope)
	if !g.Expiry.IsZero() {
		fmt.Fprintf(out, "  first access token valid until %s; tokengate serve renews it from the refresh token\n", g.Expiry.UTC().Format(time.RFC3339))
	}
	return nil
}

const codeLifetimeNote = "The code in the redirect is short-lived and single-use (Deployteq: 60 minutes): finish within that time."

func pasted(a *egress.Authorization, redirect string, stdin io.Reader, out io.Writer) (string, error) {
	fmt.Fprintf(out, "Open this address in a browser, log in and consent:\n\n  %s\n\n", a.URL)
	fmt.Fprintf(out, "You will be sent to %s?code=…&state=…. Paste that whole address here (or only the code) and press Enter.\n%s\n> ", redirect, codeLifetimeNote)
	line, err := bufio.NewReader(io.LimitReader(stdin, 16<<10)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	code, bare, err := a.Code(line)
	if err != nil {
		return "", err
	}
	if bare {
		fmt.Fprintln(out, "note: a bare code carries no state, so it could not be checked against this run; paste the whole address to have it checked")
	}
	return code, nil
}
