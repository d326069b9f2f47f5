package charts

import (
	"os"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tokengate/tokengate/config"
)

// TestTerminationGraceCoversTheShutdown: the pod's
// terminationGracePeriodSeconds exceeds what a SIGTERM shutdown may take
// (the config's shutdown_grace plus config.ShutdownOverrun, the final
// span export) with a second to spare for the exit, or the kubelet's
// SIGKILL cuts the drain short. Read from values.yaml (no helm needed).
func TestTerminationGraceCoversTheShutdown(t *testing.T) {
	b, err := os.ReadFile("tokengate/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Tokengate struct {
			Config struct {
				ShutdownGrace string `yaml:"shutdown_grace"`
			} `yaml:"config"`
		} `yaml:"tokengate"`
		TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
	}
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	grace := config.DefaultShutdownGrace
	if s := v.Tokengate.Config.ShutdownGrace; s != "" {
		if grace, err = time.ParseDuration(s); err != nil {
			t.Fatalf("tokengate.config.shutdown_grace %q: %v", s, err)
		}
	}
	need := grace + config.ShutdownOverrun + time.Second
	if got := time.Duration(v.TerminationGracePeriodSeconds) * time.Second; got < need {
		t.Errorf("terminationGracePeriodSeconds %v, want at least %v: shutdown_grace %v + %v for the final span export + 1s for the exit",
			got, need, grace, config.ShutdownOverrun)
	}
}
