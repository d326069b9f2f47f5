package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// FieldError is one problem in a configuration file, named by its YAML path
// (e.g. "routes[2].require.issuers") and, when known, its line.
type FieldError struct {
	Path string
	Line int
	Msg  string
}

// Error renders "path: message (line N)".
func (e *FieldError) Error() string {
	p := e.Path
	if p == "" {
		p = "(top level)"
	}
	if e.Line > 0 {
		return fmt.Sprintf("%s: %s (line %d)", p, e.Msg, e.Line)
	}
	return p + ": " + e.Msg
}

// decoder turns a yaml.Node tree into Go values strictly: every key must
// name a field, every scalar must fit its field, and every problem is kept
// (not just the first) with the path that leads to it. yaml.v3's own
// KnownFields reports only "line N: field x not found in type T".
type decoder struct {
	lookup func(string) (string, bool) // environment for ${VAR}
	errs   []error
	lines  map[string]int // path → line, for later validation messages
	// envPaths: scalars that were exactly one ${VAR} found in the
	// environment (secrets must come from there, not the file).
	envPaths map[string]bool
	// envRefs: scalars that held any ${VAR} (a password inside a URL).
	envRefs map[string]bool
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

func (d *decoder) fail(path string, n *yaml.Node, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.errs = append(d.errs, &FieldError{Path: path, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// decode fills v (addressable) from n.
func (d *decoder) decode(path string, n *yaml.Node, v reflect.Value) {
	for n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	d.lines[path] = n.Line
	if n.Kind == yaml.ScalarNode {
		if d.wholeEnvRef(n.Value) {
			d.envPaths[path] = true
		}
		if strings.Contains(n.Value, "${") {
			d.envRefs[path] = true
		}
		if err := d.expand(n); err != nil {
			d.fail(path, n, "%v", err)
			return
		}
	}
	if isNull(n) {
		return // leave the zero value: defaults apply later
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(path, n, v.Elem())
		return
	}
	if v.CanAddr() && v.Addr().Type().Implements(unmarshalerType) {
		err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(n)
		if err == nil {
			return
		}
		if !errors.Is(err, errNotScalar) {
			d.fail(path, n, "%v", err)
			return
		}
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(path, n, v)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(path, n, "expected a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(fmt.Sprintf("%s[%d]", path, i), c, s.Index(i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.fail(path, n, "expected a mapping, got %s", describe(n))
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			ev := reflect.New(v.Type().Elem()).Elem()
			d.decode(join(path, k.Value), val, ev)
			m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), ev)
		}
		v.Set(m)
	default:
		d.decodeScalar(path, n, v)
	}
}

func (d *decoder) decodeStruct(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.fail(path, n, "expected a mapping, got %s", describe(n))
		return
	}
	fields := yamlFields(v.Type())
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		p := join(path, k.Value)
		idx, ok := fields[k.Value]
		if !ok {
			d.fail(p, k, "unknown field %q%s", k.Value, suggest(k.Value, fields))
			continue
		}
		if seen[k.Value] {
			d.fail(p, k, "field %q given twice", k.Value)
			continue
		}
		seen[k.Value] = true
		d.decode(p, val, v.Field(idx))
	}
}

func (d *decoder) decodeScalar(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.ScalarNode {
		d.fail(path, n, "expected a single value, got %s", describe(n))
		return
	}
	s := n.Value
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			d.fail(path, n, "expected true or false, got %q", s)
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v.OverflowInt(i) {
			d.fail(path, n, "expected an integer, got %q", s)
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			d.fail(path, n, "expected a number, got %q", s)
			return
		}
		v.SetFloat(f)
	default:
		d.fail(path, n, "unsupported field type %s", v.Type())
	}
}

// expand replaces ${VAR} and ${VAR:-default} in a scalar; "$$" is a literal
// "$". Expansion happens per value, after YAML parsing, so an environment
// variable can never inject YAML structure.
func (d *decoder) expand(n *yaml.Node) error {
	if !strings.Contains(n.Value, "$") {
		return nil
	}
	var b strings.Builder
	s := n.Value
	for {
		i := strings.IndexByte(s, '$')
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		s = s[i:]
		switch {
		case strings.HasPrefix(s, "$$"):
			b.WriteByte('$')
			s = s[2:]
		case strings.HasPrefix(s, "${"):
			end := strings.IndexByte(s, '}')
			if end < 0 {
				return errors.New("unterminated ${ in value")
			}
			name, def, hasDef := strings.Cut(s[2:end], ":-")
			if !validEnvName(name) {
				return fmt.Errorf("invalid environment variable name %q", name)
			}
			val, ok := d.lookup(name)
			if !ok || (hasDef && val == "") {
				if !hasDef {
					return fmt.Errorf("environment variable %s is not set", name)
				}
				val = def
			}
			b.WriteString(val)
			s = s[end+1:]
		default:
			b.WriteByte('$')
			s = s[1:]
		}
	}
	n.Value = b.String()
	if n.Style == 0 { // plain scalar: let the new text resolve its own type
		n.Tag = ""
	}
	return nil
}

// wholeEnvRef reports whether s is exactly "${NAME}" (or with a
// ":-default") and NAME is set and non-empty in the environment.
func (d *decoder) wholeEnvRef(s string) bool {
	inner, ok := strings.CutPrefix(s, "${")
	if !ok || !strings.HasSuffix(inner, "}") || strings.Count(s, "${") != 1 {
		return false
	}
	name, _, _ := strings.Cut(strings.TrimSuffix(inner, "}"), ":-")
	val, found := d.lookup(name)
	return validEnvName(name) && found && val != ""
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if r == '_' || (r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z') || (i > 0 && r >= '0' && r <= '9') {
			continue
		}
		return false
	}
	return true
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return strconv.Quote(n.Value)
	}
}

// yamlFields maps each yaml tag of t to its field index.
func yamlFields(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag != "" && tag != "-" {
			m[tag] = i
		}
	}
	return m
}

// suggest names a known field that differs from an unknown key by case,
// a dash, or one edit, the usual typos.
func suggest(key string, fields map[string]int) string {
	norm := strings.ReplaceAll(strings.ToLower(key), "-", "_")
	for f := range fields {
		if f == norm || editDistanceOne(f, norm) {
			return fmt.Sprintf(" (did you mean %q?)", f)
		}
	}
	return ""
}

func editDistanceOne(a, b string) bool {
	if len(a) < len(b) {
		a, b = b, a
	}
	if len(a)-len(b) > 1 {
		return false
	}
	i := 0
	for i < len(b) && a[i] == b[i] {
		i++
	}
	if i == len(b) {
		return true
	}
	if len(a) == len(b) {
		return a[i+1:] == b[i+1:] || (i+1 < len(a) && a[i] == b[i+1] && a[i+1] == b[i] && a[i+2:] == b[i+2:])
	}
	return a[i+1:] == b[i:]
}
