// Package examples_test checks every example a newcomer runs: the compose
// stacks (each one's documented commands are run, then every file it mounts
// must exist and be readable by the container's user, and the tokengate
// config must validate with the environment compose gives it), the docker
// run line in docs/production.md and the Dockerfile, .gitignore coverage of
// every secret the examples make, and .env.example.
package examples_test

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// repoRoot is the repository root (the tests run in examples/).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// exampleFiles lists the repository-relative files under examples/ that
// belong to the examples: tracked or new, never ones .gitignore hides (the
// keys and secrets a developer generated locally must not make a test pass).
func exampleFiles(t *testing.T, root string) []string {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "ls-files", "-co", "--exclude-standard", "examples").Output()
	if err == nil {
		return strings.Fields(string(out))
	}
	var files []string // not a git checkout: every file is part of the examples
	err = filepath.WalkDir(filepath.Join(root, "examples"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func isComposeFile(rel string) bool {
	b := path.Base(rel)
	return (strings.HasPrefix(b, "docker-compose") || strings.HasPrefix(b, "compose")) && strings.HasSuffix(b, ".yaml")
}

func isConfigFile(rel string) bool {
	return (strings.HasSuffix(rel, ".yaml") || strings.HasSuffix(rel, ".yml")) && !isComposeFile(rel)
}

// copyExamples copies the example files into dst as a fresh checkout has
// them (files 0644, directories 0755).
func copyExamples(t *testing.T, root, dst string, files []string) {
	t.Helper()
	for _, rel := range files {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// stackFor returns the documented `docker compose` command of a compose
// file's header (the one that uses the file) and the header commands of
// every file it combines, in order.
func stackFor(t *testing.T, root, rel string) (invocation, [][]command) {
	t.Helper()
	cmds, err := headerCommands(root, rel)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cmds {
		inv, ok := composeInvocation(c)
		if !ok || !contains(inv.files, rel) {
			continue
		}
		var blocks [][]command
		for _, f := range inv.files {
			fc, err := headerCommands(root, f)
			if err != nil {
				t.Fatalf("%s names %s: %v", c.line, f, err)
			}
			blocks = append(blocks, fc)
		}
		return inv, blocks
	}
	t.Fatalf("%s: its header documents no `docker compose` command that uses it", rel)
	return invocation{}, nil
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func abs(root string, rels []string) []string {
	var out []string
	for _, r := range rels {
		out = append(out, filepath.Join(root, r))
	}
	return out
}

// TestComposeExamples, for each compose file: every host file a service
// mounts (volumes and secrets' file:) is in the example or made by the
// commands its header documents; those commands, run under umask 077, leave
// every file tokengate mounts readable by UID 65532 (compose file secrets
// keep the host file's owner and mode); and tokengate's config validates
// with the environment compose gives it (.env from .env.example), its
// published ports are served by non-loopback listeners (the admin port
// published to the host's loopback only), its upstream is a service of the
// stack, its signing keys parse and its TLS pair loads.
func TestComposeExamples(t *testing.T) {
	root := repoRoot(t)
	files := exampleFiles(t, root)
	for _, rel := range files {
		if !isComposeFile(rel) {
			continue
		}
		t.Run(rel, func(t *testing.T) {
			inv, blocks := stackFor(t, root, rel)
			created := map[string]bool{}
			for _, b := range blocks {
				for _, c := range b {
					for _, f := range c.createdFiles() {
						created[f] = true
					}
				}
			}
			st, err := loadStack(abs(root, inv.files))
			if err != nil {
				t.Fatal(err)
			}
			for _, svc := range st.serviceNames() {
				ms, err := st.mounts(svc)
				if err != nil {
					t.Fatalf("service %s: %v", svc, err)
				}
				for _, m := range ms {
					hostRel, _ := filepath.Rel(root, m.host)
					hostRel = filepath.ToSlash(hostRel)
					if !contains(files, hostRel) && !created[hostRel] && !isDirOf(files, hostRel) {
						t.Errorf("service %s mounts %s: %s is neither in the example nor made by the header's commands", svc, m.raw, hostRel)
					}
				}
			}
			if t.Failed() {
				return // the commands would fail on the same missing files
			}
			if _, err := exec.LookPath("openssl"); err != nil {
				if os.Getenv("CI") != "" {
					t.Fatal("openssl is needed to run the examples' commands")
				}
				t.Skip("openssl not installed: the documented commands were only read, not run")
			}
			work := t.TempDir()
			copyExamples(t, root, work, files)
			if script, err := runCommands(work, blocks); err != nil {
				t.Fatalf("the documented commands fail:\n%s\n%v", script, err)
			}
			st, err = loadStack(abs(work, inv.files))
			if err != nil {
				t.Fatal(err)
			}
			env := composeEnv(t, st.dir, inv.env)
			tokengates := 0
			for _, svc := range st.serviceNames() {
				if !st.isTokengate(svc) {
					continue
				}
				tokengates++
				ms, _ := st.mounts(svc)
				for _, m := range ms {
					checkReadable(t, svc, m)
				}
				checkServiceConfig(t, st, svc, ms, env)
			}
			if tokengates == 0 {
				t.Fatal("no tokengate service")
			}
		})
	}
}

// isDirOf reports whether rel is a directory holding example files.
func isDirOf(files []string, rel string) bool {
	for _, f := range files {
		if strings.HasPrefix(f, rel+"/") {
			return true
		}
	}
	return false
}

// checkReadable: tokengate runs as UID 65532, which is neither the file's
// owner nor in its group on the host, so only "other" bits count.
func checkReadable(t *testing.T, svc string, m mount) {
	t.Helper()
	fi, err := os.Stat(m.host)
	if err != nil {
		t.Errorf("service %s mounts %s: %v", svc, m.raw, err)
		return
	}
	need := fs.FileMode(0o004)
	if fi.IsDir() {
		need = 0o005
	}
	if fi.Mode().Perm()&need != need {
		t.Errorf("service %s mounts %s with mode %v: UID 65532 in the container cannot read it (compose keeps the host's owner and mode); the header's commands must set it", svc, m.raw, fi.Mode().Perm())
	}
}

// composeEnv is what compose interpolates with: .env in the project
// directory (as the header's commands made it, its "replace…" placeholders
// filled in as the user is told to), then the command line's variables.
func composeEnv(t *testing.T, dir string, cmdline map[string]string) map[string]string {
	t.Helper()
	env := map[string]string{}
	if dotenv, err := readDotEnv(filepath.Join(dir, ".env")); err == nil {
		for k, v := range dotenv {
			if strings.Contains(strings.ToLower(v), "replace") {
				v = "example-" + strings.ToLower(k)
				if strings.HasSuffix(k, "_HASH") {
					h, _ := bcrypt.GenerateFromPassword([]byte(v), bcrypt.MinCost)
					v = string(h)
				}
			}
			env[k] = v
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	for k, v := range cmdline {
		env[k] = v
	}
	return env
}

// checkServiceConfig validates the config a tokengate service reads, with
// the files it mounts at the paths it mounts them.
func checkServiceConfig(t *testing.T, st *composeStack, svc string, ms []mount, env map[string]string) {
	t.Helper()
	senv, err := st.environment(svc, env)
	if err != nil {
		t.Fatalf("service %s: %v", svc, err)
	}
	cfgPath := senv["TOKENGATE_CONFIG"]
	if cfgPath == "" {
		cfgPath = "/etc/tokengate/config.yaml" // the image's default
	}
	ports, _ := st.services[svc]["ports"].([]any)
	var published []string
	for _, p := range ports {
		published = append(published, fmt.Sprint(p))
	}
	cfg := loadMounted(t, svc, ms, cfgPath, senv)
	if cfg == nil {
		return
	}
	for _, err := range checkListeners(cfg, published) {
		t.Errorf("service %s: %v", svc, err)
	}
	if cfg.Receiving() {
		u, err := url.Parse(cfg.Upstream.URL)
		if err != nil || st.services[u.Hostname()] == nil {
			t.Errorf("service %s: upstream %q is not a service of this stack (a loopback upstream is the container itself)", svc, cfg.Upstream.URL)
		}
	}
}
