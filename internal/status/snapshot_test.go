package status

import (
	"strings"
	"testing"
)

// TestRedactHidesEverySecret: each configured secret is replaced in every
// error text, in any ASCII case and as a URL or form would carry it;
// overlapping secrets leave nothing behind; a one-letter secret cannot
// make it loop; control characters become spaces and long texts are cut.
func TestRedactHidesEverySecret(t *testing.T) {
	cases := []struct {
		name, text, want string
		secrets          []string
	}{
		{"as is", "bad secret s3cret!", "bad secret [redacted]!", []string{"s3cret"}},
		{"upper case", "bad secret S3CRET", "bad secret [redacted]", []string{"s3cret"}},
		{"form-encoded", "client_secret=a%2Bb%2Fc", "client_secret=[redacted]", []string{"a+b/c"}},
		{"path-escaped", "at /x/a+b%2Fc/", "at /x/[redacted]/", []string{"a+b/c"}},
		{"overlapping", "xxabcdefyy", "xx[redacted]yy", []string{"abcd", "cdef"}},
		{"one letter", "redacted e", "r[redacted]dact[redacted]d [redacted]", []string{"e"}},
		{"empty secret ignored", "plain text", "plain text", []string{""}},
		{"control characters", "a\x1b[31mb\r\nc", "a [31mb \nc", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := Snapshot{Issuers: []Issuer{{LastError: c.text}}, Egress: []Egress{{LastError: c.text}}, Queue: &Queue{Error: c.text, StatsError: c.text}}
			s.Replay.Error, s.SharedRedis.Error, s.Reload.Error, s.Reload.Trigger = c.text, c.text, c.text, c.text
			s.Redact(c.secrets)
			for i, got := range s.texts() {
				if *got != c.want {
					t.Errorf("text %d: %q, want %q", i, *got, c.want)
				}
			}
		})
	}
	s := Snapshot{Reload: Reload{Error: strings.Repeat("é", maxText)}}
	s.Redact(nil)
	if n := len(s.Reload.Error); n > maxText+len("…") || !strings.HasSuffix(s.Reload.Error, "…") {
		t.Errorf("long text kept %d bytes", n)
	}
}
