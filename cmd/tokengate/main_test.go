package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestRunExitCodes(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, nil, &out, &errb); code != 0 || !strings.Contains(out.String(), "tokengate") {
		t.Fatalf("version: %d %q", code, out.String())
	}
	if code := run([]string{"serve"}, nil, &out, &errb); code != 2 {
		t.Fatalf("serve without config: exit %d, want 2", code)
	}
	if code := run([]string{"bogus"}, nil, &out, &errb); code != 2 {
		t.Fatalf("unknown command: exit %d", code)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("upstream: http://x\nroutes: []\nbogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	if code := run([]string{"check", "--config", bad}, nil, &out, &errb); code != 1 {
		t.Fatalf("bad config: exit %d", code)
	}
	if !strings.Contains(out.String(), "bogus: unknown field") {
		t.Fatalf("stdout = %q", out.String())
	}
}

type safeBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestEveryHelpExitsZeroAndListsItsFlags(t *testing.T) {
	cases := []struct {
		cmd   string
		flags []string // each must be named in the output
	}{
		{"serve", []string{"-config", "-log-format", "-log-level"}},
		{"check", []string{"-config", "-token", "-route", "-log-format"}},
		{"quickstart", []string{"-config", "-receiver"}},
		{"probe", []string{"-url", "-timeout"}},
		{"new-client", []string{"-scopes", "-cost"}},
		{"authorize", []string{"-config", "-paste", "-timeout"}},
		{"hash-secret", []string{"-cost"}},
		{"queue", []string{"-config", "-route", "-state", "-limit", "-dead"}},
	}
	for _, c := range cases {
		t.Run(c.cmd, func(t *testing.T) {
			var out, errb strings.Builder
			if code := run([]string{c.cmd, "--help"}, strings.NewReader(""), &out, &errb); code != 0 {
				t.Fatalf("%s --help: exit %d", c.cmd, code)
			}
			all := out.String() + errb.String()
			for _, f := range c.flags {
				if !strings.Contains(all, f) {
					t.Errorf("%s --help does not name %s:\n%s", c.cmd, f, all)
				}
			}
		})
	}
	var out, errb strings.Builder
	if code := run([]string{"--help"}, nil, &out, &errb); code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	for _, want := range []string{"--log-format", "--log-level", "quickstart [--config FILE]"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("top-level help does not name %s", want)
		}
	}
}
