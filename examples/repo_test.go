package examples_test

import (
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/tokengate/tokengate/config"
)

// secretRE matches the example paths that hold secrets: anything in a
// secrets/ directory, keys and certificates, *secret* files, .env.
var secretRE = regexp.MustCompile(`(^|/)secrets/[^/]+$|\.(pem|key|crt)$|secret|(^|/)\.env$`)

// TestExampleSecretsAreGitIgnored: every file an example's documented
// commands create and every secret-looking file a compose file mounts is
// ignored by git (so `git add .` after following an example commits no key,
// vendor secret or .env), and none is tracked; .env.example is not ignored.
func TestExampleSecretsAreGitIgnored(t *testing.T) {
	root := repoRoot(t)
	if err := exec.Command("git", "-C", root, "rev-parse", "--git-dir").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("not a git checkout: %v", err)
		}
		t.Skip("not a git checkout")
	}
	files := exampleFiles(t, root)
	mustIgnore := map[string]string{} // path → why
	for _, rel := range files {
		if !strings.HasSuffix(rel, ".yaml") {
			continue
		}
		cmds, err := headerCommands(root, rel)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cmds {
			for _, f := range c.createdFiles() {
				mustIgnore[f] = rel + " documents `" + c.line + "`"
			}
		}
		if !isComposeFile(rel) {
			continue
		}
		inv, _ := stackFor(t, root, rel)
		st, err := loadStack(abs(root, inv.files))
		if err != nil {
			t.Fatal(err)
		}
		mustIgnore[path.Join(path.Dir(rel), ".env")] = rel + " reads .env"
		for _, svc := range st.serviceNames() {
			ms, err := st.mounts(svc)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range ms {
				r, _ := filepath.Rel(root, m.host)
				if r = filepath.ToSlash(r); secretRE.MatchString(r) {
					mustIgnore[r] = rel + " mounts it (" + m.raw + ")"
				}
			}
		}
	}
	if len(mustIgnore) < 5 {
		t.Fatalf("only %d secret paths found: %v", len(mustIgnore), mustIgnore)
	}
	for p, why := range mustIgnore {
		if err := exec.Command("git", "-C", root, "check-ignore", "-q", p).Run(); err != nil {
			t.Errorf("%s is not ignored by git (check-ignore: %v); %s", p, err, why)
		}
		if out, _ := exec.Command("git", "-C", root, "ls-files", p).Output(); len(out) > 0 {
			t.Errorf("%s is tracked; %s", p, why)
		}
	}
	for _, rel := range files {
		if path.Base(rel) == ".env.example" {
			if err := exec.Command("git", "-C", root, "check-ignore", "-q", rel).Run(); err == nil {
				t.Errorf("%s is ignored: newcomers would not get it", rel)
			}
		}
	}
}

// TestEnvExampleListsEveryVariable: every variable a compose file needs
// (${VAR:?…}, or ${VAR} without a default, which compose would replace with
// "") is in the .env.example beside it or set on its documented command
// line, and .env.example lists nothing no compose file uses.
func TestEnvExampleListsEveryVariable(t *testing.T) {
	root := repoRoot(t)
	used := map[string]map[string]bool{} // .env.example → variables compose files use
	for _, rel := range exampleFiles(t, root) {
		if !isComposeFile(rel) {
			continue
		}
		inv, _ := stackFor(t, root, rel)
		raw, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		var doc any
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		example := path.Join(path.Dir(inv.files[0]), ".env.example")
		listed, err := readDotEnv(filepath.Join(root, example))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if used[example] == nil {
			used[example] = map[string]bool{}
		}
		for _, s := range stringsIn(doc) {
			for _, r := range envRefs(s) {
				used[example][r.name] = true
				if r.hasDefault || listed[r.name] != "" || inv.env[r.name] != "" {
					continue
				}
				t.Errorf("%s needs %s, but %s does not list it", rel, r.name, example)
			}
		}
	}
	for example, vars := range used {
		listed, err := readDotEnv(filepath.Join(root, example))
		if err != nil {
			continue
		}
		for k := range listed {
			if !vars[k] {
				t.Errorf("%s lists %s, which no compose file beside it uses", example, k)
			}
		}
	}
}

// TestEveryExampleConfigValidates: every tokengate config under examples/
// passes validation. The ones a compose file mounts are loaded by
// TestComposeExamples with the environment compose gives them; the others
// with an empty environment, from their own directory.
func TestEveryExampleConfigValidates(t *testing.T) {
	root := repoRoot(t)
	files := exampleFiles(t, root)
	mounted := map[string]bool{}
	for _, rel := range files {
		if !isComposeFile(rel) {
			continue
		}
		inv, _ := stackFor(t, root, rel)
		st, err := loadStack(abs(root, inv.files))
		if err != nil {
			t.Fatal(err)
		}
		for _, svc := range st.serviceNames() {
			ms, _ := st.mounts(svc)
			for _, m := range ms {
				for _, f := range files {
					if r, _ := filepath.Rel(root, m.host); f == filepath.ToSlash(r) || strings.HasPrefix(f, filepath.ToSlash(r)+"/") {
						mounted[f] = true
					}
				}
			}
		}
	}
	n := 0
	for _, rel := range files {
		if !isConfigFile(rel) {
			continue
		}
		n++
		if mounted[rel] {
			continue
		}
		t.Run(rel, func(t *testing.T) {
			noEnv := func(string) (string, bool) { return "", false }
			if _, err := config.Load(filepath.Join(root, rel), config.Options{LookupEnv: noEnv}); err != nil {
				t.Errorf("%s: %v", rel, err)
			}
		})
	}
	if n < 6 {
		t.Fatalf("only %d example configs found", n)
	}
}
