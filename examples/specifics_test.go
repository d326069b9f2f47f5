package examples_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/tokengate/tokengate/config"
)

// TestComposeExampleIsValid checks examples/compose: its tokengate config
// passes validation with the environment compose gives it, the receiver is
// not published, and tokengate has a healthcheck on the admin port.
func TestComposeExampleIsValid(t *testing.T) {
	env := map[string]string{
		"PUBLIC_URL":            "http://localhost:8080",
		"AFTERSHIP_SECRET_HASH": "$2a$04$eSqaEAiMVOidFUUkz5EnHeodyG2rDjXGJE9QuTd7q1SFJLaz6XEQO",
	}
	cfg, err := config.Load("compose/tokengate.yaml", config.Options{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Upstream.URL != "http://receiver:9000" || cfg.TokenEndpoint.Clients[0].ClientSecretHash != env["AFTERSHIP_SECRET_HASH"] {
		t.Fatalf("config = %+v", cfg)
	}
	tlsCfg, err := config.Load("compose/tokengate-tls.yaml", config.Options{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	if tlsCfg.TLS == nil || tlsCfg.TLS.CertFile != "/run/secrets/tls.crt" || tlsCfg.TLS.ServerName != "localhost" {
		t.Fatalf("tls config = %+v", tlsCfg.TLS)
	}
	https, err := config.Load("quickstart-https.yaml", config.Options{})
	if err != nil || https.TLS == nil {
		t.Fatalf("quickstart-https: %v", err)
	}
	raw, err := os.ReadFile("compose/docker-compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Ports       []string       `yaml:"ports"`
			ReadOnly    bool           `yaml:"read_only"`
			Volumes     []string       `yaml:"volumes"`
			Healthcheck map[string]any `yaml:"healthcheck"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatal(err)
	}
	recv, tg := compose.Services["receiver"], compose.Services["tokengate"]
	if len(recv.Ports) != 0 {
		t.Errorf("the receiver is published: %v", recv.Ports)
	}
	if len(tg.Ports) == 0 || tg.Healthcheck == nil || !tg.ReadOnly {
		t.Errorf("tokengate service = %+v", tg)
	}
	if len(tg.Volumes) == 0 || tg.Volumes[0] != "./tokengate.yaml:/etc/tokengate/config.yaml:ro" {
		t.Errorf("config not mounted read-only: %v", tg.Volumes)
	}
}

// TestComposeEgressExample: the egress-only example validates with the
// environment compose gives it, publishes nothing, and the app shares
// tokengate's loopback.
func TestComposeEgressExample(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"DEPLOYTEQ_CLIENT_ID": "a227118e", "DEPLOYTEQ_CLIENT_SECRET": "s", "MYPARCEL_CLIENT_ID": "b446",
		"AKAMAI_CUSTOMER_ID": "01000000-0000-3000-9000-000000000000", "AKAMAI_CLIENT_ID": "sgnyvus6"}
	raw, err := os.ReadFile("compose/tokengate-egress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"myparcel_client_secret", "akamai_client_secret"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Parse([]byte(strings.ReplaceAll(string(raw), "/run/secrets/", dir+"/")), dir,
		config.Options{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Receiving() || len(cfg.Egress) != 3 {
		t.Fatalf("want the calling side only, three vendors: %+v", cfg.Egress)
	}
	want := map[string]string{"deployteq": "basic", "myparcel": "json", "akamai": "multipart"}
	for _, e := range cfg.Egress {
		if want[e.Name] != e.Token.Auth {
			t.Errorf("%s: auth %s", e.Name, e.Token.Auth)
		}
	}
	composed, err := os.ReadFile("compose/docker-compose.egress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Ports       []string `yaml:"ports"`
			NetworkMode string   `yaml:"network_mode"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(composed, &compose); err != nil {
		t.Fatal(err)
	}
	if len(compose.Services["tokengate"].Ports) != 0 || compose.Services["app"].NetworkMode != "service:tokengate" {
		t.Errorf("compose services = %+v", compose.Services)
	}
}

// TestComposeSignedExample: the signed-webhooks example validates with the
// environment compose gives it (the replay store's password from the
// environment), both replicas share one replay store, and Redis is not
// published.
func TestComposeSignedExample(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"PUBLIC_URL": "https://hooks.example.com", "REPLAY_STORE_URL": "redis://:pw@redis:6379/0",
		"AFTERSHIP_SECRET_HASH": "$2a$10$abcdefghijklmnopqrstuuMxg2Gg6P7v5v1qZ5tDq7Yf5oVZ0k7oS",
		"GITHUB_WEBHOOK_SECRET": "gh", "STRIPE_WEBHOOK_SECRET": "whsec_x"}
	raw, err := os.ReadFile("compose/tokengate-signed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "github_webhook_secret_next"), []byte("gh-next\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "signing.pem"), []byte("unused by validation"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(strings.ReplaceAll(string(raw), "/run/secrets/", dir+"/")), dir,
		config.Options{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Signatures.RedisReplay() {
		t.Fatalf("replay store %q, want Redis", cfg.Signatures.ReplayStore)
	}
	gh := cfg.Routes[0].Signature
	if gh == nil || gh.Scheme != "github" || len(gh.AllSecrets()) != 2 || gh.AllSecrets()[1] != "gh-next" {
		t.Fatalf("github route: %+v", gh)
	}
	composed, err := os.ReadFile("compose/docker-compose.signed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Ports       []string          `yaml:"ports"`
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(composed, &compose); err != nil {
		t.Fatal(err)
	}
	a, b := compose.Services["tokengate-a"], compose.Services["tokengate-b"]
	if a.Environment["REPLAY_STORE_URL"] == "" || a.Environment["REPLAY_STORE_URL"] != b.Environment["REPLAY_STORE_URL"] {
		t.Errorf("the replicas do not share one replay store: %q vs %q", a.Environment["REPLAY_STORE_URL"], b.Environment["REPLAY_STORE_URL"])
	}
	if len(compose.Services["redis"].Ports) != 0 {
		t.Error("redis is published")
	}
}
