package verifier

import (
	"bytes"
	"encoding/json"
	"slices"
)

// claimFilter says which claims a verifier keeps in Principal.Claims:
// every one (all), or only names, the ones routes and claim headers use.
// A cached token holds its kept claims for as long as it is cached, so
// keeping only those is what keeps the cache small. nil keeps none.
type claimFilter struct {
	all   bool
	names []string
}

// newClaimFilter: keep false keeps none; names nil keeps every claim;
// otherwise only names (none when names is empty).
func newClaimFilter(keep bool, names []string) *claimFilter {
	switch {
	case !keep:
		return nil
	case names == nil:
		return &claimFilter{all: true}
	}
	return &claimFilter{names: slices.Clone(names)}
}

// pick decodes the kept claims of payload (numbers kept exact): the whole
// object, or only the named members, each decoded alone; a name given
// twice keeps its last value, as encoding/json does. nil when nothing is
// kept or none of the names is there.
func (f *claimFilter) pick(payload []byte) (map[string]any, error) {
	if f == nil || (!f.all && len(f.names) == 0) {
		return nil, nil
	}
	if f.all {
		return claimMap(payload)
	}
	var m map[string]any
	err := members(payload, func(name, raw []byte) error {
		if !slices.Contains(f.names, string(name)) {
			return nil
		}
		var v any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			return err
		}
		if m == nil {
			m = map[string]any{}
		}
		m[string(name)] = v
		return nil
	})
	return m, err
}

// shared reports whether kept claim maps are worth sharing between
// tokens: only named claims repeat across tokens (all claims include
// "jti", "iat" and "exp").
func (f *claimFilter) shared() bool { return f != nil && !f.all }
