package diagnose

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/stack"
	"github.com/tokengate/tokengate/verifier"
)

// checkIssuers probes every issuer and prints a line for each, the
// warnings about introspection without client authentication, and the
// token endpoint's line; it returns the problems found.
func checkIssuers(ctx context.Context, cfg *config.Config, bad map[string]bool, out io.Writer) []string {
	var problems []string
	fmt.Fprintln(out, "issuers")
	for i, is := range cfg.Issuers {
		status := probeIssuer(ctx, is, fmt.Sprintf("issuers[%d]", i), bad)
		kind := "jwt"
		where := is.Issuer
		if is.JWKSURL != "" {
			where += " (jwks " + is.JWKSURL + ")"
		}
		if is.IsIntrospection() {
			kind, where = "introspection", is.Introspection.URL
		}
		fmt.Fprintf(out, "  %-12s %-13s %s: %s\n", is.Name, kind, where, status.summary)
		if status.problem != "" {
			problems = append(problems, status.problem)
		}
	}
	for i, is := range cfg.Issuers {
		if in := is.Introspection; in != nil && in.Auth == config.IntrospectionAuthNone {
			if w := publicWithoutAuth(ctx, in.URL); w != "" {
				fmt.Fprintf(out, "  warning: issuers[%d].introspection.auth: none, but %s: anyone who reaches it can test tokens; keep an endpoint without client authentication on a private network\n", i, w)
			}
		}
	}
	if te := cfg.TokenEndpoint; te != nil {
		fmt.Fprintf(out, "  %-12s %-13s %s%s: %d client(s)\n", te.Name, "token_endpoint", strings.TrimSuffix(te.Issuer, "/"), te.Path, len(te.Clients))
	}
	return problems
}

// probeIssuer fetches a JWT issuer's keys (after discovery), or asks an
// introspection endpoint about a random token.
func probeIssuer(ctx context.Context, is config.Issuer, prefix string, bad map[string]bool) finding {
	if notProbed(prefix, bad) {
		return finding{summary: "not probed (fix the config first)"}
	}
	v, err := stack.NewBuilder(stack.Options{}).Issuer(is)
	if err != nil {
		return finding{"invalid", fmt.Sprintf("%s: %v", prefix, err)}
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	switch v := v.(type) {
	case *verifier.JWT:
		if err := v.Start(ctx); err != nil {
			field := ".issuer"
			if is.JWKSURL != "" {
				field = ".jwks_url"
			}
			var mm *oidc.IssuerMismatchError
			if errors.As(err, &mm) {
				return finding{"ISSUER MISMATCH", fmt.Sprintf("%s.issuer: %q ≠ %q, the issuer its discovery document names (%s); tokens carry the discovered one, so write it exactly",
					prefix, mm.Provided, mm.Discovered, howDiffer(mm.Provided, mm.Discovered))}
			}
			return finding{"UNREACHABLE", fmt.Sprintf("%s%s: %v", prefix, field, err)}
		}
		return finding{summary: "keys fetched"}
	case *verifier.Introspection:
		// A random token must come back inactive: that proves the URL and
		// tokengate's credentials without presenting anyone's real token.
		_, err := v.Verify(ctx, probeToken())
		if errors.Is(err, verifier.ErrUnavailable) {
			return finding{"UNREACHABLE", fmt.Sprintf("%s.introspection.url: %v", prefix, err)}
		}
		if is.Introspection.Auth == config.IntrospectionAuthNone {
			return finding{summary: "endpoint answered without client credentials (auth: none)"}
		}
		if answersAnyone(ctx, is.Introspection.URL) {
			return finding{summary: "endpoint answered, credentials accepted; WARNING: it also answers requests without credentials, so anyone who reaches it can test tokens (keep it private, or use auth: none knowingly)"}
		}
		return finding{summary: "endpoint answered, credentials accepted"}
	}
	return finding{summary: "ok"}
}

// probeToken is a random token no one was issued, so probing an
// introspection endpoint never presents anyone's real token.
func probeToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "tokengate-check-" + hex.EncodeToString(b[:])
}

// answersAnyone reports whether an introspection endpoint answers an
// RFC 7662 response to a request that carries no client credentials.
func answersAnyone(ctx context.Context, endpoint string) bool {
	form := url.Values{"token": {probeToken()}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var answer struct {
		Active *bool `json:"active"`
	}
	return resp.StatusCode == http.StatusOK && json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&answer) == nil && answer.Active != nil
}

// publicWithoutAuth says why an introspection URL used without client
// authentication looks public ("" when it is loopback or private).
func publicWithoutAuth(ctx context.Context, raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	host := u.Hostname()
	if host == "localhost" {
		return ""
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		ips, err := net.DefaultResolver.LookupNetIP(rctx, "ip", host)
		if err != nil {
			return fmt.Sprintf("%s could not be resolved to tell whether it is private", host)
		}
		addrs = ips
	}
	for _, a := range addrs {
		if a = a.Unmap(); !a.IsLoopback() && !a.IsPrivate() {
			return fmt.Sprintf("%s is a public address (%s)", host, a)
		}
	}
	return ""
}

// howDiffer names how two issuer URLs differ, in the terms operators
// stumble on: a trailing slash (Hydra, Auth0), letter case, the path
// (Keycloak realms, Entra ID v1/v2), or something else.
func howDiffer(a, b string) string {
	switch {
	case strings.TrimSuffix(a, "/") == strings.TrimSuffix(b, "/"):
		return "they differ only by a trailing slash"
	case strings.EqualFold(a, b):
		return "they differ only in letter case"
	}
	ua, errA := url.Parse(a)
	ub, errB := url.Parse(b)
	if errA == nil && errB == nil && ua.Scheme == ub.Scheme && strings.EqualFold(ua.Host, ub.Host) {
		return fmt.Sprintf("same host, different path: %q vs %q", ua.Path, ub.Path)
	}
	return "different URLs"
}
