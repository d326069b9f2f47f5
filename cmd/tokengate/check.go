package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/crypto/bcrypt"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/egress"
	"github.com/tokengate/tokengate/internal/stack"
	"github.com/tokengate/tokengate/signature"
	"github.com/tokengate/tokengate/verifier"
)

// probeTimeout bounds each issuer probe of `tokengate check`.
const probeTimeout = 10 * time.Second

// check validates the configuration and probes every well-formed issuer
// (discovery, JWKS, introspection credentials), then prints a summary and
// every problem found.
func check(ctx context.Context, path string, out io.Writer) error {
	cfg, cerr := config.LoadForCheck(path, config.Options{})
	if cfg == nil {
		return cerr
	}
	var problems []string
	badPaths := map[string]bool{}
	var ce *config.Error
	if errors.As(cerr, &ce) {
		for _, e := range ce.Errs {
			problems = append(problems, e.Error())
			var fe *config.FieldError
			if errors.As(e, &fe) {
				badPaths[fe.Path] = true
			}
		}
	}
	fmt.Fprintf(out, "config   %s\n", path)
	if !cfg.Receiving() {
		fmt.Fprintf(out, "calling side only (admin %s)\n", cfg.AdminListen)
		problems = append(problems, checkEgress(ctx, cfg, badPaths, out)...)
		return report(path, problems, out)
	}
	fmt.Fprintf(out, "listen   %s (admin %s) → upstream %s\n", cfg.Listen, cfg.AdminListen, cfg.Upstream.URL)
	tlsLines, tlsProblems := checkTLS(ctx, cfg, time.Now())
	for _, l := range tlsLines {
		fmt.Fprintln(out, l)
	}
	problems = append(problems, tlsProblems...)
	fmt.Fprintln(out, "issuers")
	for i, is := range cfg.Issuers {
		prefix := fmt.Sprintf("issuers[%d]", i)
		status := probeIssuer(ctx, is, prefix, badPaths)
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
	fmt.Fprintln(out, "routes")
	for _, r := range cfg.Routes {
		p := r.Path
		if r.PathPrefix != "" {
			p = strings.TrimSuffix(r.PathPrefix, "/") + "/**"
		}
		methods := "ANY"
		if len(r.Methods) > 0 {
			methods = strings.Join(r.Methods, ",")
		}
		req := "public"
		if !r.Public {
			req = describeAuth(r)
		}
		fmt.Fprintf(out, "  %-30s %-10s %s\n", p, methods, req)
	}
	if cerr == nil && len(tlsProblems) == 0 {
		problems = append(problems, checkBuild(cfg)...)
	}
	for _, w := range unboundSubjects(cfg) {
		fmt.Fprintln(out, "  warning: "+w)
	}
	problems = append(problems, checkReplayStore(ctx, cfg)...)
	problems = append(problems, checkEgress(ctx, cfg, badPaths, out)...)
	if w := checkUpstreamListening(ctx, cfg.Upstream.URL); w != "" {
		fmt.Fprintln(out, "  warning: "+w)
	}
	return report(path, problems, out)
}

// checkBuild builds the receiving side exactly as serve does (verifiers,
// the token endpoint and its signing keys, signature verifiers, the
// handler), without a network call or a listener, so that check refuses
// what serve would refuse.
func checkBuild(cfg *config.Config) []string {
	b := stack.NewBuilder(stack.Options{})
	st, err := b.Build(cfg, nil)
	b.AbortReplay() // check serves nothing: close a Redis client it made
	if err != nil {
		return []string{fmt.Sprintf("serve would refuse this configuration: %v", err)}
	}
	st.Stop()
	return nil
}

// checkUpstreamListening warns when nothing accepts connections at the
// upstream's address: not an error (the receiver may start later), but
// every request would get 502 until it does.
func checkUpstreamListening(ctx context.Context, upstream string) string {
	u, err := url.Parse(upstream)
	if err != nil || u.Host == "" {
		return ""
	}
	host := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(dctx, "tcp", host)
	if err != nil {
		return fmt.Sprintf("upstream %s does not accept connections (%v): requests would get 502 until it does", host, err)
	}
	_ = conn.Close()
	return ""
}

// report prints the problems found, or OK.
func report(path string, problems []string, out io.Writer) error {
	if len(problems) > 0 {
		fmt.Fprintf(out, "\n%d problem(s):\n", len(problems))
		for _, p := range problems {
			fmt.Fprintf(out, "  %s\n", p)
		}
		return fmt.Errorf("%s: %d problem(s)", path, len(problems))
	}
	fmt.Fprintln(out, "\nOK")
	return nil
}

func describeRequire(r config.Require) string {
	var parts []string
	if len(r.Issuers) > 0 {
		parts = append(parts, "issuers="+strings.Join(r.Issuers, ","))
	} else {
		parts = append(parts, "issuers=any")
	}
	if len(r.Scopes) > 0 {
		parts = append(parts, "scopes="+strings.Join(r.Scopes, "+"))
	}
	if len(r.AnyScopes) > 0 {
		parts = append(parts, "any_scopes="+strings.Join(r.AnyScopes, "|"))
	}
	for k, v := range r.Claims {
		parts = append(parts, fmt.Sprintf("%s=%s", k, v))
	}
	if cc := r.ClientCert; cc != nil {
		cert := "client_cert"
		if cc.CAFile != "" {
			cert += " ca_file=" + cc.CAFile
		}
		if len(cc.Issuers) > 0 {
			cert += " issuers=" + strings.Join(cc.Issuers, ";")
		}
		if len(cc.Subjects) > 0 {
			cert += " subjects=" + strings.Join(cc.Subjects, ";")
		}
		parts = append(parts, cert)
	}
	return strings.Join(parts, " ")
}

// unboundSubjects warns of routes that accept a client certificate by its
// subject alone while tls.client_ca_file trusts several CAs: any of them
// can issue a certificate with that subject.
func unboundSubjects(cfg *config.Config) []string {
	if cfg.TLS == nil || cfg.TLS.ClientCAFile == "" {
		return nil
	}
	pemBytes, err := os.ReadFile(cfg.TLS.ClientCAFile)
	if err != nil {
		return nil // reported as a problem elsewhere
	}
	cas := 0
	for rest := pemBytes; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil && c.IsCA {
			cas++
		}
	}
	if cas < 2 {
		return nil
	}
	var warnings []string
	for i, r := range cfg.Routes {
		if cc := r.Require.ClientCert; cc != nil && !cc.Bound() {
			warnings = append(warnings, fmt.Sprintf("routes[%d].require.client_cert: accepts a certificate from any of the %d CAs in tls.client_ca_file (subjects alone do not say which CA issued them): bind the route with ca_file or issuers", i, cas))
		}
	}
	return warnings
}

type probeResult struct{ summary, problem string }

// checkEgress requests a token for every well-formed egress entry, all at
// once, and returns every failure (bad credentials, scope refused,
// unreachable Token URL). The token itself is never printed.
func checkEgress(ctx context.Context, cfg *config.Config, bad map[string]bool, out io.Writer) []string {
	if len(cfg.Egress) == 0 {
		return nil
	}
	results := make([]probeResult, len(cfg.Egress))
	var wg sync.WaitGroup
	for i, e := range cfg.Egress {
		wg.Go(func() { results[i] = probeEgress(ctx, cfg.TokenEndpoint, e, fmt.Sprintf("egress[%d]", i), bad) })
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

func probeEgress(ctx context.Context, te *config.TokenEndpoint, e config.Egress, prefix string, bad map[string]bool) probeResult {
	if notProbed(prefix, bad) {
		return probeResult{summary: "not probed (fix the config first)"}
	}
	if te != nil && strings.TrimSuffix(te.Issuer, "/")+te.Path == e.Token.URL {
		return checkOwnClient(te, e, prefix)
	}
	if e.Token.AuthorizationCode() {
		return checkRefreshTokenFile(e, prefix)
	}
	topts, err := stack.TokenOptions(e.Token)
	if err != nil {
		return probeResult{"invalid", fmt.Sprintf("%s.token: %v", prefix, err)}
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
		return probeResult{summary, fmt.Sprintf("%s.token: %s: %v", prefix, e.Token.URL, err)}
	}
	s := fmt.Sprintf("token obtained, valid %v", tok.Lifetime().Round(time.Second))
	if tok.Scope != "" {
		s += ", scope " + tok.Scope
	}
	return probeResult{summary: s}
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

// checkOwnClient checks an egress entry whose Token URL is this
// configuration's own token endpoint (the quickstart's loop): it is not
// running while check runs, so the client, its secret and its scopes are
// checked against the configured clients instead.
func checkOwnClient(te *config.TokenEndpoint, e config.Egress, prefix string) probeResult {
	for _, c := range te.Clients {
		if c.ClientID != e.Token.ClientID {
			continue
		}
		ok := c.SecretFromFile != "" && subtle.ConstantTimeCompare([]byte(c.SecretFromFile), []byte(e.Token.ClientSecret)) == 1 ||
			c.ClientSecretHash != "" && bcrypt.CompareHashAndPassword([]byte(c.ClientSecretHash), []byte(e.Token.ClientSecret)) == nil
		if !ok {
			return probeResult{"FAILED (invalid_client)", fmt.Sprintf("%s.token.client_secret: does not match client %s of this token_endpoint", prefix, c.ClientID)}
		}
		for _, sc := range e.Token.Scopes {
			if sc != "*" && !slices.Contains(c.Scopes, sc) {
				return probeResult{"FAILED (invalid_scope)", fmt.Sprintf("%s.token.scopes: %q is not a scope of client %s", prefix, sc, c.ClientID)}
			}
		}
		return probeResult{summary: "uses this tokengate's own token_endpoint: client " + c.ClientID + " and its secret match"}
	}
	return probeResult{"FAILED (invalid_client)", fmt.Sprintf("%s.token.client_id: %q is not a client of this token_endpoint", prefix, e.Token.ClientID)}
}

// notProbed: a configuration problem under prefix makes probing pointless.
func notProbed(prefix string, bad map[string]bool) bool {
	for p := range bad {
		if p == prefix || strings.HasPrefix(p, prefix+".") {
			return true
		}
	}
	return false
}

func probeIssuer(ctx context.Context, is config.Issuer, prefix string, bad map[string]bool) probeResult {
	if notProbed(prefix, bad) {
		return probeResult{summary: "not probed (fix the config first)"}
	}
	v, err := stack.NewBuilder(stack.Options{}).Issuer(is)
	if err != nil {
		return probeResult{"invalid", fmt.Sprintf("%s: %v", prefix, err)}
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
				return probeResult{"ISSUER MISMATCH", fmt.Sprintf("%s.issuer: %q ≠ %q, the issuer its discovery document names (%s); tokens carry the discovered one, so write it exactly",
					prefix, mm.Provided, mm.Discovered, howDiffer(mm.Provided, mm.Discovered))}
			}
			return probeResult{"UNREACHABLE", fmt.Sprintf("%s%s: %v", prefix, field, err)}
		}
		return probeResult{summary: "keys fetched"}
	case *verifier.Introspection:
		// A random token must come back inactive: that proves the URL and
		// tokengate's credentials without presenting anyone's real token.
		_, err := v.Verify(ctx, probeToken())
		if errors.Is(err, verifier.ErrUnavailable) {
			return probeResult{"UNREACHABLE", fmt.Sprintf("%s.introspection.url: %v", prefix, err)}
		}
		if is.Introspection.Auth == config.IntrospectionAuthNone {
			return probeResult{summary: "endpoint answered without client credentials (auth: none)"}
		}
		if answersAnyone(ctx, is.Introspection.URL) {
			return probeResult{summary: "endpoint answered, credentials accepted; WARNING: it also answers requests without credentials, so anyone who reaches it can test tokens (keep it private, or use auth: none knowingly)"}
		}
		return probeResult{summary: "endpoint answered, credentials accepted"}
	}
	return probeResult{summary: "ok"}
}

// describeAuth summarizes what a route checks: its token policy, its
// signature policy, or both.
func describeAuth(r config.Route) string {
	sig := ""
	if s := r.Signature; s != nil {
		sig = fmt.Sprintf("signature=%s tolerance=%s replay=%t", s.Scheme, s.Tolerance.D(), s.ReplayOn())
	}
	switch r.AuthMode() {
	case config.AuthSignature:
		return sig
	case config.AuthAny:
		return describeRequire(r.Require) + " OR " + sig
	case config.AuthAll:
		return describeRequire(r.Require) + " AND " + sig
	}
	return describeRequire(r.Require)
}

// checkReplayStore pings a Redis replay store once and checks every
// signature route's secrets decode for its scheme.
func checkReplayStore(ctx context.Context, cfg *config.Config) []string {
	var problems []string
	b := stack.NewBuilder(stack.Options{})
	for i, r := range cfg.Routes {
		if s := r.Signature; s != nil && s.Scheme != "" && len(s.AllSecrets()) > 0 {
			if _, err := signature.New(signature.Options{Scheme: s.Scheme, Secrets: s.AllSecrets()}); err != nil {
				problems = append(problems, fmt.Sprintf("routes[%d].signature: %v", i, err))
			}
		}
	}
	if !cfg.Signatures.RedisReplay() {
		return problems
	}
	st, err := b.ReplayStore(cfg.Signatures)
	if err != nil {
		return append(problems, fmt.Sprintf("signatures.replay_store: %v", err))
	}
	rs := st.(*signature.RedisStore)
	defer rs.Close()
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if err := rs.Ping(ctx); err != nil {
		problems = append(problems, fmt.Sprintf("signatures.replay_store: Redis does not answer: %v", err))
	}
	return problems
}
