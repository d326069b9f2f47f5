package diagnose

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/egress"
	"github.com/tokengate/tokengate/internal/stack"
)

// checkEgress requests a token for every well-formed egress entry, all at
// once, and returns every failure (bad credentials, scope refused,
// unreachable Token URL). The token itself is never printed.
func checkEgress(ctx context.Context, cfg *config.Config, bad map[string]bool, out io.Writer) []string {
	if len(cfg.Egress) == 0 {
		return nil
	}
	results := make([]finding, len(cfg.Egress))
	var wg sync.WaitGroup
	for i, e := range cfg.Egress {
		wg.Go(func() { results[i] = probeEgress(ctx, cfg, e, fmt.Sprintf("egress[%d]", i), bad) })
	}
	wg.Wait()
	fmt.Fprintln(out, "egress")
	var problems []string
	for i, e := range cfg.Egress {
		fmt.Fprintf(out, "  %-12s %-9s %s → %s: %s\n", e.Name, e.Token.Auth, e.Listen, e.Upstream.URL, results[i].summary)
		if results[i].problem != "" {
			problems = append(problems, results[i].problem)
		}
	}
	return problems
}

func probeEgress(ctx context.Context, cfg *config.Config, e config.Egress, prefix string, bad map[string]bool) finding {
	if notProbed(prefix, bad) {
		return finding{summary: "not probed (fix the config first)"}
	}
	if f, ok := checkTokenKey(cfg, e, prefix); !ok {
		return f
	}
	te := cfg.TokenEndpoint
	if te != nil && strings.TrimSuffix(te.Issuer, "/")+te.Path == e.Token.URL {
		return checkOwnClient(te, e, prefix)
	}
	if e.Token.AuthorizationCode() {
		return checkRefreshTokenFile(e, prefix)
	}
	topts, err := stack.TokenOptions(e.Token)
	if err != nil {
		return finding{"invalid", fmt.Sprintf("%s.token: %v", prefix, err)}
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	tok, err := egress.Fetch(ctx, topts)
	if err != nil {
		var te *egress.TokenError
		summary := "FAILED"
		if errors.As(err, &te) {
			summary = "FAILED (" + te.Code + ")"
		}
		return finding{summary, fmt.Sprintf("%s.token: %s: %v", prefix, e.Token.URL, err)}
	}
	s := fmt.Sprintf("token obtained, valid %v", tok.Lifetime().Round(time.Second))
	if tok.Scope != "" {
		s += ", scope " + tok.Scope
	}
	return finding{summary: s}
}

// checkTokenKey loads a shared entry's redis.token_key as serve does
// (stack.TokenKey): a token_key_file missing, empty or not base64 of 32
// bytes makes serve refuse to start, so check fails too.
func checkTokenKey(cfg *config.Config, e config.Egress, prefix string) (finding, bool) {
	if !e.Token.SharedOn() {
		return finding{}, true
	}
	if _, err := stack.TokenKey(cfg.Redis); err != nil {
		return finding{"FAILED", fmt.Sprintf("%s.token.shared: serve would refuse it: %v", prefix, err)}, false
	}
	return finding{}, true
}

// checkOwnClient checks an egress entry whose Token URL is this
// configuration's own token endpoint (the quickstart's loop): it is not
// running while check runs, so the client, its secret and its scopes are
// checked against the configured clients instead.
func checkOwnClient(te *config.TokenEndpoint, e config.Egress, prefix string) finding {
	for _, c := range te.Clients {
		if c.ClientID != e.Token.ClientID {
			continue
		}
		ok := c.SecretFromFile != "" && subtle.ConstantTimeCompare([]byte(c.SecretFromFile), []byte(e.Token.ClientSecret)) == 1 ||
			c.ClientSecretHash != "" && bcrypt.CompareHashAndPassword([]byte(c.ClientSecretHash), []byte(e.Token.ClientSecret)) == nil
		if !ok {
			return finding{"FAILED (invalid_client)", fmt.Sprintf("%s.token.client_secret: does not match client %s of this token_endpoint", prefix, c.ClientID)}
		}
		for _, sc := range e.Token.Scopes {
			if sc != "*" && !slices.Contains(c.Scopes, sc) {
				return finding{"FAILED (invalid_scope)", fmt.Sprintf("%s.token.scopes: %q is not a scope of client %s", prefix, sc, c.ClientID)}
			}
		}
		return finding{summary: "uses this tokengate's own token_endpoint: client " + c.ClientID + " and its secret match"}
	}
	return finding{"FAILED (invalid_client)", fmt.Sprintf("%s.token.client_id: %q is not a client of this token_endpoint", prefix, e.Token.ClientID)}
}

// checkRefreshTokenFile is `tokengate check` for an authorization-code
// entry: the refresh token file must exist and be readable. It is not
// spent: a refresh by check would race the running gate on rotation.
func checkRefreshTokenFile(e config.Egress, prefix string) finding {
	f := e.Token.RefreshTokenFile
	if f == "" && e.Token.SharedOn() {
		return finding{summary: "refresh token kept in Redis (shared; not read or spent by check)"}
	}
	b, err := os.ReadFile(f)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return finding{"NOT AUTHORIZED", fmt.Sprintf("%s.token.refresh_token_file: %s does not exist: run `tokengate authorize %s --config FILE`", prefix, f, e.Name)}
	case err != nil:
		return finding{"FAILED", fmt.Sprintf("%s.token.refresh_token_file: %v", prefix, err)}
	case strings.TrimSpace(string(b)) == "":
		return finding{"NOT AUTHORIZED", fmt.Sprintf("%s.token.refresh_token_file: %s is empty: run `tokengate authorize %s --config FILE`", prefix, f, e.Name)}
	}
	if err := dirWritable(filepath.Dir(f)); err != nil {
		return finding{"FAILED", fmt.Sprintf("%s.token.refresh_token_file: the directory %s is not writable by this user (%v): the vendor's rotated refresh token could not be stored", prefix, filepath.Dir(f), err)}
	}
	return finding{summary: "refresh token present (not spent by check: a refresh would race the running gate's rotation)"}
}

// dirWritable reports whether a file can be created in dir (the rotated
// refresh token is written beside the old one and renamed over it).
func dirWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".tokengate-check-*")
	if err != nil {
		return err
	}
	name := f.Name()
	_ = f.Close()
	return os.Remove(name)
}
