package examples_test

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// command is one shell command an example's header comment documents.
type command struct {
	line  string
	words []string
	cwd   string // repository-relative directory it runs in (after earlier cd lines)
}

// headerCommands returns the commands in a file's leading comment: lines
// indented by three or more spaces after "#", "\" continuations joined and
// trailing "# remarks" removed. The first command runs at the repository
// root; "cd DIR" moves the ones after it.
func headerCommands(root, rel string) ([]command, error) {
	raw, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		return nil, err
	}
	var lines []string
	cont := false
	for _, l := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(l, "#") {
			break // the header ends at the first line that is not a comment
		}
		body := strings.TrimPrefix(l, "#")
		if !cont && !strings.HasPrefix(body, "   ") {
			continue
		}
		body = strings.TrimSpace(body)
		if cont {
			lines[len(lines)-1] += " " + body
		} else {
			lines = append(lines, body)
		}
		cont = strings.HasSuffix(body, `\`)
		if cont {
			lines[len(lines)-1] = strings.TrimSuffix(lines[len(lines)-1], `\`)
		}
	}
	var out []command
	cwd := "."
	for _, l := range lines {
		l = stripRemark(l)
		words := strings.Fields(l)
		if len(words) == 0 {
			continue
		}
		out = append(out, command{line: l, words: words, cwd: cwd})
		if words[0] == "cd" && len(words) == 2 {
			cwd = path.Join(cwd, words[1])
		}
	}
	return out, nil
}

// stripRemark removes a trailing "# remark" outside quotes.
func stripRemark(l string) string {
	var quote rune
	for i, r := range l {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"':
			quote = r
		case r == '#' && i > 0 && (l[i-1] == ' ' || l[i-1] == '\t'):
			return strings.TrimSpace(l[:i])
		}
	}
	return strings.TrimSpace(l)
}

// fileCommands are the documented commands that prepare files; the test
// runs them. Everything else (docker, go, curl) is only read.
var fileCommands = []string{"cd", "chmod", "cp", "install", "mkdir", "openssl", "printf", "touch", "umask"}

func (c command) preparesFiles() bool { return slices.Contains(fileCommands, c.words[0]) }

// invocation is a documented `docker compose` command.
type invocation struct {
	files []string          // repository-relative compose files, in -f order
	env   map[string]string // VAR=value words before "docker"
}

// composeInvocation parses c if it runs docker compose.
func composeInvocation(c command) (invocation, bool) {
	inv := invocation{env: map[string]string{}}
	i := 0
	for ; i < len(c.words) && strings.Contains(c.words[i], "=") && c.words[i][0] != '-'; i++ {
		k, v, _ := strings.Cut(c.words[i], "=")
		inv.env[k] = v
	}
	if i+1 >= len(c.words) || c.words[i] != "docker" || c.words[i+1] != "compose" {
		return inv, false
	}
	for j := i + 2; j < len(c.words); j++ {
		if (c.words[j] == "-f" || c.words[j] == "--file") && j+1 < len(c.words) {
			inv.files = append(inv.files, path.Join(c.cwd, c.words[j+1]))
			j++
		}
	}
	if len(inv.files) == 0 {
		inv.files = []string{path.Join(c.cwd, "docker-compose.yaml")}
	}
	return inv, true
}

var redirectRE = regexp.MustCompile(`>\s*(\S+)`)

// createdFiles lists the repository-relative files c writes.
func (c command) createdFiles() []string {
	if !c.preparesFiles() {
		return nil
	}
	var out []string
	add := func(p string) { out = append(out, path.Join(c.cwd, strings.Trim(p, `"'`))) }
	for i, w := range c.words {
		if (w == "-out" || w == "-keyout") && i+1 < len(c.words) {
			add(c.words[i+1])
		}
	}
	for _, m := range redirectRE.FindAllStringSubmatch(c.line, -1) {
		add(m[1])
	}
	switch c.words[0] {
	case "cp", "install":
		add(c.words[len(c.words)-1])
	case "touch":
		for _, w := range c.words[1:] {
			add(w)
		}
	}
	return out
}

// runCommands runs the commands that prepare files, each block from the
// root of a copy of the repository, under umask 077 (the strictest a user
// may have: modes then come from the commands, not from luck). Variables the
// commands use ($MYPARCEL_SECRET, …) are set to example values.
func runCommands(root string, blocks [][]command) (string, error) {
	var script strings.Builder
	script.WriteString("set -eu\numask 077\n")
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + root, "TG_EXAMPLE_ROOT=" + root}
	for _, cmds := range blocks {
		script.WriteString("cd \"$TG_EXAMPLE_ROOT\"\n")
		for _, c := range cmds {
			if !c.preparesFiles() {
				continue
			}
			for _, r := range envRefs(c.line) {
				env = append(env, fmt.Sprintf("%s=example-%s", r.name, strings.ToLower(r.name)))
			}
			script.WriteString(c.line + "\n")
		}
	}
	cmd := exec.Command("sh", "-c", script.String())
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return script.String(), fmt.Errorf("%w\n%s", err, out)
	}
	return script.String(), nil
}
