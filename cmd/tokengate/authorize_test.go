package main

import (
	"strings"
	"testing"
)

// TestAuthorizeCommandLine: the command's own parsing of authorize, through
// run (the flow itself is internal/consent's): the entry's NAME before or
// after the flags, exit 2 without one, exit 1 naming the problem for an
// entry that does not exist or needs no consent.
func TestAuthorizeCommandLine(t *testing.T) {
	t.Setenv("TG_TEST_SECRET", "s")
	path := writeConfig(t, "admin_listen: 127.0.0.1:0\negress:\n  - name: vendor\n    listen: 127.0.0.1:0\n    upstream: https://vendor.example\n"+
		"    token: { url: https://vendor.example/token, client_id: c, client_secret: \"${TG_TEST_SECRET}\" }\n")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--config", path}, 2, "authorize needs the egress entry's NAME"},
		{[]string{"nope", "--config", path}, 1, `has no egress entry named "nope"`},
		{[]string{"--config", path, "vendor"}, 1, "egress vendor uses grant client_credentials"},
		{[]string{"--config", path, "vendor", "extra"}, 2, "unexpected arguments"},
	} {
		var out, errOut strings.Builder
		code := run(append([]string{"authorize"}, c.args...), strings.NewReader(""), &out, &errOut)
		if code != c.code || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("authorize %q: exit %d, want %d with %q; stderr %q", c.args, code, c.code, c.want, errOut.String())
		}
	}
}
