package config

import (
	"strings"
	"testing"
)

// TestRedisURLsRefusedWithoutShowingThem: every redis URL key refuses a
// URL whose password was not percent-encoded — net/url cannot parse it,
// an unescaped # makes the rest a fragment and a piece of the password
// the host, a / or ? cuts the authority — with a message that says to
// escape the password and holds no part of the URL.
func TestRedisURLsRefusedWithoutShowingThem(t *testing.T) {
	const base = "upstream: http://127.0.0.1:9000\nroutes:\n  - path: /gh\n    signature: { scheme: github, secrets: ['${GH}'] }\n"
	keys := []struct{ path, yaml string }{
		{"signatures.replay_store", base + "signatures: { replay_store: '${X}' }\n"},
		{"queue.store", strings.Replace(base, "['${GH}'] }\n", "['${GH}'] }\n    delivery: { mode: queued }\n", 1) + "queue: { store: '${X}' }\n"},
		{"redis.url", base + "redis: { url: '${X}' }\n"},
	}
	for _, u := range []struct {
		name, url string
		pieces    []string
	}{
		{"invalid user info", "redis://:Gen^Pass{Top}Secret|9@127.0.0.1:50177/0", []string{"Gen^", "Top}", "Secret|9"}},
		{"# makes a fragment", "redis://:p@ssw0rd#Top5ecret@127.0.0.1:6379/0", []string{"ssw0rd", "Top5ecret"}},
		{"/ cuts the authority", "redis://:pa/ssW0rdSecret@127.0.0.1:6379/0", []string{"ssW0rdSecret", ":pa"}},
		{"/ in a numeric password", "redis://user:1234/567890@127.0.0.1:6379/0", []string{"1234", "567890"}},
		{"two @", "redis://:p@ssW0rdSecret@127.0.0.1:6379/0", []string{"ssW0rdSecret"}},
		{"invalid port", "redis://:W0rdSecret@127.0.0.1:6x379/0", []string{"W0rdSecret", "6x379"}},
	} {
		for _, k := range keys {
			t.Run(u.name+"/"+k.path, func(t *testing.T) {
				_, err := Parse([]byte(k.yaml), t.TempDir(), env("GH", "s", "X", u.url))
				if err == nil {
					t.Fatal("accepted")
				}
				if !strings.Contains(err.Error(), k.path+": ") || !strings.Contains(err.Error(), "%40 %23 %2F %3F") {
					t.Errorf("no advice to escape the password at %s: %v", k.path, err)
				}
				for _, p := range u.pieces {
					if strings.Contains(err.Error(), p) {
						t.Fatalf("the message shows %q: %v", p, err)
					}
				}
			})
		}
	}
	for _, k := range keys {
		escaped := "redis://:Gen%5EPass%7BTop%7DSecret%7C9%40x%23y%2Fz%3F@127.0.0.1:6379/0"
		if _, err := Parse([]byte(k.yaml), t.TempDir(), env("GH", "s", "X", escaped)); err != nil {
			t.Errorf("%s: the escaped password refused: %v", k.path, err)
		}
	}
}
