package config

import (
	"strings"
	"testing"
)

func TestSignatureValidation(t *testing.T) {
	env := map[string]string{"GH": "secret", "REDIS_PW": "pw"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	base := "upstream: http://127.0.0.1:9000\nroutes:\n"
	tests := []struct {
		name, yaml string
		want       []string // each in the error; none: valid
	}{
		{"github from env", base + "  - path: /gh\n    signature: { scheme: github, secrets: ['${GH}'] }\n", nil},
		{"plain-text secret", base + "  - path: /gh\n    signature: { scheme: github, secrets: [hunter2] }\n",
			[]string{"routes[0].signature.secrets[0]: plain-text secrets are refused"}},
		{"unset variable", base + "  - path: /gh\n    signature: { scheme: github, secrets: ['${NOPE}'] }\n",
			[]string{"routes[0].signature.secrets[0]: environment variable NOPE is not set"}},
		{"no secrets", base + "  - path: /gh\n    signature: { scheme: github }\n", []string{"routes[0].signature.secrets: required"}},
		{"unknown scheme", base + "  - path: /gl\n    signature: { scheme: gitlab, secrets: ['${GH}'] }\n", []string{"routes[0].signature.scheme: must be one of"}},
		{"auth signature without block", base + "  - path: /gh\n    auth: signature\n", []string{"routes[0].signature: required with auth: signature"}},
		{"bearer ignores block", base + "  - path: /gh\n    auth: bearer\n    signature: { scheme: github, secrets: ['${GH}'] }\n",
			[]string{"routes[0].auth: auth: bearer ignores the signature block"}},
		{"require on signature only", base + "  - path: /gh\n    require: { scopes: [a] }\n    signature: { scheme: github, secrets: ['${GH}'] }\n",
			[]string{"routes[0].require: auth: signature verifies no token"}},
		{"tolerance too long", base + "  - path: /gh\n    signature: { scheme: github, secrets: ['${GH}'], tolerance: 2h }\n",
			[]string{"routes[0].signature.tolerance: must be between 1s and 1h"}},
		{"two signed routes of one name", base + "  - { path: /gh, methods: [POST], signature: { scheme: github, secrets: ['${GH}'] } }\n  - { path: /gh, methods: [PUT], signature: { scheme: github, secrets: ['${GH}'] } }\n",
			[]string{`routes[1].name: "/gh" is also the name of signed routes[0]`}},
		{"signed routes of two names", base + "  - { name: a, path: /gh, methods: [POST], signature: { scheme: github, secrets: ['${GH}'] } }\n  - { name: b, path: /gh, methods: [PUT], signature: { scheme: github, secrets: ['${GH}'] } }\n", nil},
		{"redis with env password", base + "  - path: /gh\n    signature: { scheme: github, secrets: ['${GH}'] }\nsignatures: { replay_store: 'redis://:${REDIS_PW}@redis:6379/0' }\n", nil},
		{"redis with plain password", base + "  - path: /gh\n    signature: { scheme: github, secrets: ['${GH}'] }\nsignatures: { replay_store: 'redis://:pw@redis:6379/0' }\n",
			[]string{"signatures.replay_store: a password in the URL must come from the environment"}},
		{"not redis", base + "  - path: /gh\n    signature: { scheme: github, secrets: ['${GH}'] }\nsignatures: { replay_store: 'memcached://x' }\n",
			[]string{"signatures.replay_store: must be memory or a redis://"}},
		{"public with signature", base + "  - path: /gh\n    public: true\n    signature: { scheme: github, secrets: ['${GH}'] }\n",
			[]string{"routes[0]: a public route needs no credentials"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), t.TempDir(), Options{LookupEnv: lookup})
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}
