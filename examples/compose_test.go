package examples_test

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// composeStack is the model docker compose builds from one or more files
// (-f a -f b): services merged in order, later files overriding earlier
// ones, with "!override" replacing a value instead of merging it.
type composeStack struct {
	dir      string // project directory: the first file's directory
	files    []string
	services map[string]map[string]any
	secrets  map[string]map[string]any // top-level secrets: name → {file: ...}
}

// loadStack reads and merges the compose files (absolute paths).
func loadStack(files []string) (*composeStack, error) {
	st := &composeStack{dir: filepath.Dir(files[0]), files: files, services: map[string]map[string]any{}, secrets: map[string]map[string]any{}}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		top := doc.Content[0]
		for i := 0; i+1 < len(top.Content); i += 2 {
			key, val := top.Content[i].Value, top.Content[i+1]
			if key != "services" && key != "secrets" {
				continue
			}
			for j := 0; j+1 < len(val.Content); j += 2 {
				name, body := val.Content[j].Value, val.Content[j+1]
				overrides := map[string]bool{}
				for k := 0; k+1 < len(body.Content); k += 2 {
					if v := body.Content[k+1]; v.Tag == "!override" {
						overrides[body.Content[k].Value] = true
						v.Tag = ""
					}
				}
				var m map[string]any
				if err := body.Decode(&m); err != nil {
					return nil, fmt.Errorf("%s: %s.%s: %w", f, key, name, err)
				}
				dst := st.services
				if key == "secrets" {
					dst = st.secrets
				}
				if dst[name] == nil {
					dst[name] = map[string]any{}
				}
				mergeInto(dst[name], m, overrides)
			}
		}
	}
	return st, nil
}

// mergeInto merges a later file's service into the earlier one, as
// docker compose does for the keys the examples use: maps merge, lists
// append (without duplicates), scalars and !override values replace.
func mergeInto(dst, src map[string]any, overrides map[string]bool) {
	for k, v := range src {
		old, had := dst[k]
		switch {
		case !had || overrides[k]:
			dst[k] = v
		case isMap(old) && isMap(v):
			m := map[string]any{}
			for kk, vv := range old.(map[string]any) {
				m[kk] = vv
			}
			for kk, vv := range v.(map[string]any) {
				m[kk] = vv
			}
			dst[k] = m
		case isList(old) && isList(v):
			l := append([]any{}, old.([]any)...)
			seen := map[string]bool{}
			for _, x := range l {
				seen[fmt.Sprint(x)] = true
			}
			for _, x := range v.([]any) {
				if !seen[fmt.Sprint(x)] {
					l = append(l, x)
				}
			}
			dst[k] = l
		default:
			dst[k] = v
		}
	}
}

func isMap(v any) bool  { _, ok := v.(map[string]any); return ok }
func isList(v any) bool { _, ok := v.([]any); return ok }

// serviceNames lists the stack's services, sorted.
func (st *composeStack) serviceNames() []string {
	var names []string
	for n := range st.services {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// isTokengate reports whether a service runs the image the Dockerfile builds.
func (st *composeStack) isTokengate(name string) bool {
	s := st.services[name]
	img, _ := s["image"].(string)
	_, build := s["build"]
	return build || strings.HasPrefix(img, "tokengate")
}

// mount is one host file or directory a service sees at target.
type mount struct {
	host, target string
	secret       bool   // a compose secret (file:), not a volume
	raw          string // as written, for messages
}

// mounts lists a service's bind mounts and file secrets, host paths made
// absolute against the project directory. Named volumes are skipped.
func (st *composeStack) mounts(service string) ([]mount, error) {
	s := st.services[service]
	var out []mount
	hostPath := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(st.dir, p)
	}
	vols, _ := s["volumes"].([]any)
	for _, v := range vols {
		switch v := v.(type) {
		case string:
			parts := strings.Split(v, ":")
			if len(parts) < 2 {
				return nil, fmt.Errorf("volume %q: no target", v)
			}
			if !strings.HasPrefix(parts[0], ".") && !strings.HasPrefix(parts[0], "/") {
				continue // a named volume
			}
			out = append(out, mount{host: hostPath(parts[0]), target: parts[1], raw: v})
		case map[string]any:
			if v["type"] != "bind" {
				continue
			}
			out = append(out, mount{host: hostPath(fmt.Sprint(v["source"])), target: fmt.Sprint(v["target"]), raw: fmt.Sprint(v)})
		}
	}
	secs, _ := s["secrets"].([]any)
	for _, v := range secs {
		var name, target string
		switch v := v.(type) {
		case string:
			name = v
		case map[string]any:
			name, _ = v["source"].(string)
			target, _ = v["target"].(string)
		}
		if target == "" {
			target = name
		}
		if !path.IsAbs(target) {
			target = "/run/secrets/" + target
		}
		def, ok := st.secrets[name]
		if !ok {
			return nil, fmt.Errorf("secret %q is not defined at the top level", name)
		}
		file, _ := def["file"].(string)
		if file == "" {
			continue // an environment secret: no host file
		}
		out = append(out, mount{host: hostPath(file), target: target, secret: true, raw: "secret " + name + " (file: " + file + ")"})
	}
	return out, nil
}

// environment is a service's environment after interpolation with env.
func (st *composeStack) environment(service string, env map[string]string) (map[string]string, error) {
	out := map[string]string{}
	switch e := st.services[service]["environment"].(type) {
	case map[string]any:
		for k, v := range e {
			s, err := interpolate(fmt.Sprint(v), env)
			if err != nil {
				return nil, fmt.Errorf("environment %s: %w", k, err)
			}
			out[k] = s
		}
	case []any:
		for _, kv := range e {
			k, v, _ := strings.Cut(fmt.Sprint(kv), "=")
			s, err := interpolate(v, env)
			if err != nil {
				return nil, fmt.Errorf("environment %s: %w", k, err)
			}
			out[k] = s
		}
	}
	return out, nil
}

// containerPath maps a path inside the service's container to the host
// file or directory mounted there ("" if nothing is).
func containerPath(ms []mount, p string) string {
	best := -1
	for i, m := range ms {
		if (p == m.target || strings.HasPrefix(p, strings.TrimSuffix(m.target, "/")+"/")) && (best < 0 || len(m.target) > len(ms[best].target)) {
			best = i
		}
	}
	if best < 0 {
		return ""
	}
	return filepath.Join(ms[best].host, strings.TrimPrefix(p, ms[best].target))
}
