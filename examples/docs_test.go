package examples_test

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// shellCommands returns the docker commands in text (a Markdown page or
// the Dockerfile's comment): "\" continuations joined, "#" comment markers
// and quotes dropped.
func shellCommands(text string) [][]string {
	var out [][]string
	var cur string
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(l), "#"))
		cur += " " + strings.TrimSuffix(l, `\`)
		if strings.HasSuffix(l, `\`) {
			continue
		}
		words := strings.Fields(strings.NewReplacer(`"`, "", "'", "").Replace(cur))
		cur = ""
		if len(words) > 1 && words[0] == "docker" {
			out = append(out, words)
		}
	}
	return out
}

// flag returns every value of a flag ("-p 8080:8080" or "--name=x").
func flag(words []string, names ...string) []string {
	var out []string
	for i, w := range words {
		for _, n := range names {
			if w == n && i+1 < len(words) {
				out = append(out, words[i+1])
			} else if v, ok := strings.CutPrefix(w, n+"="); ok {
				out = append(out, v)
			}
		}
	}
	return out
}

// TestDockerRunLinesWork checks the docker commands of docs/production.md
// and of the Dockerfile's comment as a container would see them: the config
// the image reads (/etc/tokengate/config.yaml) is mounted from the example
// and validates, every file it names comes with it, every published port is
// served by a listener bound beyond loopback, the admin port is published to
// the host's loopback only, the upstream is a container started on the same
// --network under that name, and the image run is the one built.
func TestDockerRunLinesWork(t *testing.T) {
	root := repoRoot(t)
	for _, doc := range []string{"docs/production.md", "Dockerfile"} {
		t.Run(doc, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(root, doc))
			if err != nil {
				t.Fatal(err)
			}
			cmds := shellCommands(string(raw))
			names := map[string]string{} // container name → network
			var built []string
			var gate []string
			for _, c := range cmds {
				switch c[1] {
				case "build":
					built = append(built, flag(c, "-t", "--tag")...)
				case "run":
					for _, n := range flag(c, "--name") {
						names[n] = strings.Join(flag(c, "--network"), ",")
					}
					if len(flag(c, "-v", "--volume")) > 0 {
						gate = c
					}
				}
			}
			if gate == nil {
				t.Fatalf("no `docker run` with a config mount in %s", doc)
			}
			var ms []mount
			for _, v := range flag(gate, "-v", "--volume") {
				parts := strings.Split(strings.ReplaceAll(v, "$PWD", root), ":")
				if len(parts) < 3 || parts[2] != "ro" {
					t.Errorf("mount %s: mount the config read-only (:ro)", v)
				}
				ms = append(ms, mount{host: parts[0], target: parts[1], raw: v})
			}
			env := map[string]string{}
			for _, e := range flag(gate, "-e", "--env") {
				k, v, _ := strings.Cut(e, "=")
				env[k] = v
			}
			cfgPath := env["TOKENGATE_CONFIG"]
			if cfgPath == "" {
				cfgPath = "/etc/tokengate/config.yaml" // the image's ENV
			}
			cfg := loadMounted(t, doc, ms, cfgPath, env)
			if cfg == nil {
				return
			}
			for _, err := range checkListeners(cfg, flag(gate, "-p", "--publish")) {
				t.Error(err)
			}
			network := strings.Join(flag(gate, "--network"), ",")
			u, err := url.Parse(cfg.Upstream.URL)
			if err != nil || network == "" || names[u.Hostname()] != network {
				t.Errorf("upstream %q: no container of that name is started on the gate's network %q (containers: %v)", cfg.Upstream.URL, network, names)
			}
			if image := gate[len(gate)-1]; !contains(built, image) {
				t.Errorf("runs image %q, but %s builds %v", image, doc, built)
			}
		})
	}
}
