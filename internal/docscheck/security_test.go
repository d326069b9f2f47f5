package docscheck

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSecurityRowsNameTestsThatExist: each "`pkg` TestA, TestB" in
// SECURITY.md names tests defined in that package's directory (a test that
// moved or was renamed must take its row with it).
func TestSecurityRowsNameTestsThatExist(t *testing.T) {
	doc, err := os.ReadFile("../../SECURITY.md")
	if err != nil {
		t.Fatal(err)
	}
	refs := regexp.MustCompile("`([a-z][a-z0-9/]*)` (Test[A-Za-z0-9_]+(?:/[A-Za-z0-9_]+)?(?:, Test[A-Za-z0-9_]+(?:/[A-Za-z0-9_]+)?)*)").FindAllStringSubmatch(string(doc), -1)
	if len(refs) < 50 {
		t.Fatalf("found only %d test references in SECURITY.md", len(refs))
	}
	sources := map[string]string{}
	for _, r := range refs {
		dir := r[1]
		if _, ok := sources[dir]; !ok {
			files, _ := filepath.Glob(filepath.Join("../..", dir, "*_test.go"))
			var b strings.Builder
			for _, f := range files {
				src, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				b.Write(src)
			}
			sources[dir] = b.String()
		}
		for _, name := range strings.Split(r[2], ", ") {
			fn, _, _ := strings.Cut(name, "/")
			if !strings.Contains(sources[dir], "func "+fn+"(") {
				t.Errorf("SECURITY.md names %s in %s, which has no such test", name, dir)
			}
		}
	}
}
