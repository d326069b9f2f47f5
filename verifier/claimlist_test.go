package verifier

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestStringOrListReadsAsEncodingJSON: the hand-split list reads every
// "aud"/"scp" value as encoding/json did (nulls as "", errors alike).
func TestStringOrListReadsAsEncodingJSON(t *testing.T) {
	for _, in := range []string{`"a"`, `"a\u0041"`, `[]`, `[ ]`, `["a","b"]`, `[ "a" , null , "c\n" ]`, `[1]`, `[["a"]]`, `[{"a":1}]`, `["a",true]`, `{"a":1}`, `3`, `true`, `["x\"y"]`, "[\"a\" ,\n\"b\"]"} {
		got, err := stringOrList("aud", []byte(in))
		var want []string
		var werr error
		switch in[0] {
		case '"':
			var s string
			werr = json.Unmarshal([]byte(in), &s)
			want = []string{s}
		case '[':
			werr = json.Unmarshal([]byte(in), &want)
		default:
			werr = json.Unmarshal([]byte(in), &[]string{})
			if werr == nil {
				werr = json.Unmarshal([]byte(`1`), &[]string{})
			}
		}
		if (err != nil) != (werr != nil) || (err == nil && !reflect.DeepEqual(got, want)) {
			t.Errorf("%s: got %#v %v, want %#v %v", in, got, err, want, werr)
		}
	}
}
