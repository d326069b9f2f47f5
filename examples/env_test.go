package examples_test

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// envRef is one ${VAR...} or $VAR in a compose value.
type envRef struct {
	name       string
	hasDefault bool // ${VAR:-x}, ${VAR-x}, ${VAR:+x}: compose needs nothing
	required   bool // ${VAR:?msg}, ${VAR?msg}: compose refuses to start without it
}

var refRE = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)((:?[-?+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// envRefs lists the variables s refers to ("$$" is a literal "$").
func envRefs(s string) []envRef {
	var out []envRef
	for _, m := range refRE.FindAllStringSubmatch(s, -1) {
		switch {
		case m[0] == "$$":
		case m[1] != "":
			op := strings.TrimPrefix(m[3], ":")
			out = append(out, envRef{name: m[1], hasDefault: op == "-" || op == "+", required: op == "?"})
		default:
			out = append(out, envRef{name: m[5]})
		}
	}
	return out
}

// interpolate substitutes variables as docker compose does. A variable
// that is unset (or empty, with ":") and has no default is an error: compose
// would refuse (${VAR:?}) or silently substitute "" (${VAR}), and either way
// the example would not work.
func interpolate(s string, env map[string]string) (string, error) {
	var err error
	out := refRE.ReplaceAllStringFunc(s, func(tok string) string {
		m := refRE.FindStringSubmatch(tok)
		if m[0] == "$$" {
			return "$"
		}
		name, colon, op, arg := m[1], strings.HasPrefix(m[3], ":"), strings.TrimPrefix(m[3], ":"), m[4]
		if name == "" {
			name = m[5]
		}
		v, ok := env[name]
		set := ok && (v != "" || !colon)
		switch {
		case op == "+":
			if set {
				return arg
			}
			return ""
		case set:
			return v
		case op == "-":
			return arg
		case op == "?":
			err = fmt.Errorf("%s is required: %s", name, arg)
		default:
			err = fmt.Errorf("%s is not set (compose would substitute an empty string)", name)
		}
		return ""
	})
	return out, err
}

// stringsIn walks a decoded YAML value and returns every string in it.
func stringsIn(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case map[string]any:
		var out []string
		for _, x := range v {
			out = append(out, stringsIn(x)...)
		}
		return out
	case []any:
		var out []string
		for _, x := range v {
			out = append(out, stringsIn(x)...)
		}
		return out
	}
	return nil
}

// readDotEnv reads a compose .env file: KEY=VALUE lines, '…' literal,
// "…" quoted, # comments.
func readDotEnv(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: not KEY=VALUE", path, n)
		}
		switch {
		case len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'':
			v = v[1 : len(v)-1]
		case len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"':
			v = strings.ReplaceAll(v[1:len(v)-1], `\"`, `"`)
		default:
			if i := strings.Index(v, " #"); i >= 0 {
				v = v[:i]
			}
			v = strings.TrimSpace(v)
		}
		env[strings.TrimSpace(k)] = v
	}
	return env, sc.Err()
}
