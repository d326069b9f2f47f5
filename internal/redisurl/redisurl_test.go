package redisurl

import (
	"errors"
	"strings"
	"testing"
)

// badURLs are redis URLs whose password was not percent-encoded, with the
// pieces of the password that no error may show.
var badURLs = []struct {
	Name, URL string
	Pieces    []string
}{
	{"invalid user info", "redis://:Gen^Pass{Top}Secret|9@127.0.0.1:50177/0", []string{"Gen", "Pass", "Top}Secret", "Secret|9"}},
	{"# makes a fragment", "redis://:p@ssw0rd#Top5ecret@127.0.0.1:6379/0", []string{"ssw0rd", "Top5ecret"}},
	{"/ cuts the authority", "redis://:pa/ssW0rdSecret@127.0.0.1:6379/0", []string{"ssW0rdSecret", `"pa"`, ":pa"}},
	{"/ in a numeric password", "redis://user:1234/567890@127.0.0.1:6379/0", []string{"1234", "567890"}},
	{"? cuts the authority", "redis://:pa?ssW0rdSecret@127.0.0.1/0", []string{"ssW0rdSecret"}},
	{"two @", "redis://:p@ssW0rdSecret@127.0.0.1:6379/0", []string{"ssW0rdSecret"}},
	{"invalid port", "redis://:W0rdSecret@127.0.0.1:6x379/0", []string{"W0rdSecret", "6x379"}},
	{"database not a number", "redis://:W0rdSecret@127.0.0.1:6379/zero", []string{"W0rdSecret", "zero"}},
}

// TestErrorsNeverHoldTheURL: every refusal names the reason, never a
// part of the URL (a piece of the password).
func TestErrorsNeverHoldTheURL(t *testing.T) {
	for _, tc := range badURLs {
		t.Run(tc.Name, func(t *testing.T) {
			err := Check(tc.URL)
			if err == nil {
				t.Fatal("accepted")
			}
			if _, perr := Parse(tc.URL); perr == nil || perr.Error() != err.Error() {
				t.Fatalf("Parse: %v, Check: %v", perr, err)
			}
			for _, p := range tc.Pieces {
				if strings.Contains(err.Error(), p) {
					t.Fatalf("the error shows %q: %v", p, err)
				}
			}
		})
	}
}

// TestCheck: escaped passwords pass; each mistake gets its reason.
func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want error
	}{
		{"redis://127.0.0.1:6379/0", nil},
		{"rediss://:p%40ss%23w%2Frd%3F@redis.internal:6380/2", nil},
		{"redis://user:Gen%5EPass%7BTop%7DSecret%7C9@127.0.0.1", nil},
		{"redis://:6379", nil}, // the client's default host
		{"redis://:p@ssw0rd#x@127.0.0.1:6379/0", ErrMisSplit},
		{"redis://127.0.0.1:6379/0#", ErrMisSplit},
		{"redis://127.0.0.1/0?x=a@b", ErrMisSplit},
		{"redis://:a@b@127.0.0.1", ErrMisSplit},
		{"redis://:Gen^Pass@127.0.0.1", ErrNotURL},
		{"http://127.0.0.1:6379", ErrScheme},
		{"redis:///0", ErrNoHost},
		{"redis://127.0.0.1/0/1", ErrClient},
	} {
		if err := Check(tc.url); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.url, err, tc.want)
		}
	}
}
