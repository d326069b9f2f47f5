package diagnose

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// TestCheckNeverPrintsARedisPassword: `tokengate check` with a redis URL
// whose password was not percent-encoded (net/url cannot parse it, or an
// unescaped # or / cuts it) names the key and says to escape the password,
// and prints no part of it — for the replay store, the queue store and
// the redis: block.
func TestCheckNeverPrintsARedisPassword(t *testing.T) {
	for _, u := range []struct{ name, url, secret string }{
		{"invalid user info", "redis://:Gen^Pass{Top}Secret|9@127.0.0.1:50177/0", "Top}Secret"},
		{"invalid port", "redis://:TopSecret9@127.0.0.1:5x0177/0", "TopSecret9"},
		{"# in the password", "redis://:p@ssw0rd#TopSecret9@127.0.0.1:50177/0", "TopSecret9"},
		{"/ in a numeric password", "redis://user:1234/567890@127.0.0.1:6379/0", "567890"},
	} {
		for _, key := range []struct{ path, yaml string }{
			{"signatures.replay_store", "signatures: { replay_store: '${X}' }\n"},
			{"queue.store", "queue: { store: '${X}' }\n"},
			{"redis.url", "redis: { url: '${X}' }\n"},
		} {
			t.Run(u.name+"/"+key.path, func(t *testing.T) {
				t.Setenv("X", u.url)
				t.Setenv("GH_CHECK_URL", "gh-secret")
				path := writeConfig(t, fmt.Sprintf(`
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream: http://127.0.0.1:9
routes:
  - name: gh
    path: /hooks/gh
    signature: { scheme: github, secrets: ["${GH_CHECK_URL}"] }
    delivery: { mode: queued }
%s`, key.yaml))
				var out bytes.Buffer
				err := Check(t.Context(), path, &out)
				if err == nil {
					t.Fatalf("check passed:\n%s", out.String())
				}
				if strings.Contains(out.String(), u.secret) || strings.Contains(err.Error(), u.secret) {
					t.Fatalf("check printed the password:\n%s", out.String())
				}
				if !strings.Contains(out.String(), key.path+": ") || !strings.Contains(out.String(), "%40 %23 %2F %3F") {
					t.Errorf("no advice at %s to escape the password:\n%s", key.path, out.String())
				}
			})
		}
	}
}
