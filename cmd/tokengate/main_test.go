package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
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
