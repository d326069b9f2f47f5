package main

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/verifier/verifiertest"
)

// TestCheckTokenFromStdin: "--token -" reads a pasted "Bearer …" line, so
// the token need not be on the command line (shell history, ps).
func TestCheckTokenFromStdin(t *testing.T) {
	idp := verifiertest.New()
	defer idp.Close()
	path := writeConfig(t, fmt.Sprintf(`
upstream: http://127.0.0.1:9
issuers: [{ name: idp, issuer: %s, audiences: [a] }]
routes: [{ path: /hook }]
`, idp.Issuer()))
	tok := idp.Mint(idp.Claims("a"))
	var out, errOut bytes.Buffer
	code := run([]string{"check", "--config", path, "--token", "-"}, strings.NewReader("Bearer "+tok+"\n"), &out, &errOut)
	if code != 0 || !regexp.MustCompile(`(?m)^decision FORWARDED`).MatchString(out.String()) {
		t.Fatalf("exit %d, stderr %q, output:\n%s", code, errOut.String(), out.String())
	}
	if strings.Contains(out.String(), tok) {
		t.Error("the token was printed")
	}
}

// TestCheckTokenCommandLine: the command's own parsing of check --token,
// through run: --route unquoted (POST /hook as two arguments), the exit
// status of a refused token (1) and of a --route that is not "METHOD
// PATH" (2, a usage error).
func TestCheckTokenCommandLine(t *testing.T) {
	idp := verifiertest.New()
	defer idp.Close()
	path := writeConfig(t, fmt.Sprintf(`
upstream: http://127.0.0.1:9
issuers: [{ name: idp, issuer: %s, audiences: [a] }]
routes: [{ path: /hook, methods: [POST] }]
`, idp.Issuer()))
	tok := idp.Mint(idp.Claims("a"))
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--token", tok, "--route", "POST", "/hook"}, 0, "request  POST /hook → route \"/hook\" (path /hook)"},
		{[]string{"--token", tok, "--route", "GET /hook"}, 1, "decision REFUSED: 404 not_found"},
		{[]string{"--token", tok, "--route", "POST"}, 2, ""},
		{[]string{"--token", " "}, 2, ""},
	} {
		var out, errOut bytes.Buffer
		code := run(append([]string{"check", "--config", path}, c.args...), strings.NewReader(""), &out, &errOut)
		if code != c.code || !strings.Contains(out.String(), c.want) {
			t.Errorf("%q: exit %d, want %d with %q; stderr %q, output:\n%s", c.args[2:], code, c.code, c.want, errOut.String(), out.String())
		}
	}
}
