package proxy

import "testing"

// TestIsB64TokenByByte checks the look-up table against RFC 6750's
// grammar for every byte, alone and before padding, and the padding rules.
func TestIsB64TokenByByte(t *testing.T) {
	const allowed = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/"
	in := map[byte]bool{}
	for i := range len(allowed) {
		in[allowed[i]] = true
	}
	for c := range 256 {
		b := byte(c)
		for _, s := range []string{string([]byte{b}), "ab" + string([]byte{b}) + "cd", string([]byte{b}) + "=="} {
			if got := isB64Token(s); got != in[b] {
				t.Errorf("isB64Token(%q) = %v, want %v", s, got, in[b])
			}
		}
	}
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{"", false}, {"=", false}, {"==", false}, {"a=", true}, {"a==", true},
		{"a=b", false}, {"a= ", false}, {"abc.def.ghi", true}, {"a b", false},
	} {
		if got := isB64Token(tc.s); got != tc.want {
			t.Errorf("isB64Token(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}
