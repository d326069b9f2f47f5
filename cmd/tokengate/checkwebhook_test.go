package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckWebhookCommandLine: check --webhook through run: a request
// file or stdin ("-"), --route replacing the file's request line, the
// exit status of a forwarded (0) and a refused (1) request and of usage
// mistakes (2), and the secret never in the output.
func TestCheckWebhookCommandLine(t *testing.T) {
	const secret = "cmd-line-secret-4411"
	t.Setenv("T_GH", secret)
	path := writeConfig(t, `
upstream: http://127.0.0.1:9
routes:
  - name: github
    path: /webhooks/github
    methods: [POST]
    signature: { scheme: github, secrets: ["${T_GH}"] }
`)
	body := `{"zen":"Design for failure."}`
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	sig := "sha256=" + hex.EncodeToString(m.Sum(nil))
	request := func(target, signature string) string {
		return "POST " + target + " HTTP/1.1\nHost: hooks.example.com\nX-Hub-Signature-256: " + signature + "\n\n" + body
	}
	dir := t.TempDir()
	good := write(t, dir, "good.http", request("/webhooks/github", sig))
	bad := write(t, dir, "bad.http", request("/webhooks/github", "sha256="+strings.Repeat("0", 64)))
	elsewhere := write(t, dir, "elsewhere.http", request("/github-hook", sig))
	garbage := write(t, dir, "garbage.http", "this is not a request\n\n")
	for _, c := range []struct {
		args  []string
		stdin string
		code  int
		want  string
	}{
		{[]string{"--webhook", good}, "", 0, "decision FORWARDED"},
		{[]string{"--webhook", "-"}, request("/webhooks/github", sig), 0, "read     stdin: 3 lines of request line and headers, bare LF line endings"},
		{[]string{"--webhook", bad}, "", 1, `decision REFUSED: 401 invalid_signature "signature mismatch"`},
		{[]string{"--webhook", elsewhere}, "", 1, "decision REFUSED: 404 not_found"},
		{[]string{"--webhook", elsewhere, "--route", "POST", "/webhooks/github"}, "", 0, "request  POST /webhooks/github → route \"github\""},
		{[]string{"--webhook", garbage}, "", 2, ""},
		{[]string{"--webhook", filepath.Join(dir, "missing.http")}, "", 2, ""},
		{[]string{"--webhook", good, "--token", "x"}, "", 2, ""},
		{[]string{"--webhook", good, "--route", "POST"}, "", 2, ""},
		{[]string{"--route", "POST /webhooks/github"}, "", 2, ""},
	} {
		var out, errOut bytes.Buffer
		code := run(append([]string{"check", "--config", path}, c.args...), strings.NewReader(c.stdin), &out, &errOut)
		if code != c.code || !strings.Contains(out.String(), c.want) {
			t.Errorf("%q: exit %d, want %d with %q; stderr %q, output:\n%s", c.args, code, c.code, c.want, errOut.String(), out.String())
		}
		if strings.Contains(out.String()+errOut.String(), secret) {
			t.Errorf("%q: the secret was printed", c.args)
		}
	}
}
