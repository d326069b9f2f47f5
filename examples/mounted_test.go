package examples_test

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path"
	"sort"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/issuer"
)

// loadMounted loads the config a container reads at cfgPath, every
// container path in it mapped to the host file mounted there, with env as
// its environment; it also loads the signing keys and TLS pair the config
// names, as serve would at start.
func loadMounted(t *testing.T, who string, ms []mount, cfgPath string, env map[string]string) *config.Config {
	t.Helper()
	host := containerPath(ms, cfgPath)
	if host == "" {
		t.Errorf("%s: nothing is mounted at %s, the config it reads", who, cfgPath)
		return nil
	}
	raw, err := os.ReadFile(host)
	if err != nil {
		t.Errorf("%s: %v", who, err)
		return nil
	}
	targets := make([]mount, len(ms))
	copy(targets, ms)
	sort.Slice(targets, func(i, j int) bool { return len(targets[i].target) > len(targets[j].target) })
	var pairs []string
	for _, m := range targets {
		pairs = append(pairs, m.target, m.host)
	}
	text := strings.NewReplacer(pairs...).Replace(string(raw))
	dir := containerPath(ms, path.Dir(cfgPath))
	if dir == "" {
		dir = t.TempDir() // the config's directory is not mounted: relative files are missing there too
	}
	cfg, err := config.Parse([]byte(text), dir, config.Options{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if err != nil {
		t.Errorf("%s: %s does not validate with the environment it is given: %v", who, cfgPath, err)
		return nil
	}
	if te := cfg.TokenEndpoint; te != nil {
		for _, f := range te.SigningKeyFiles {
			if _, err := issuer.LoadKeyFile(f); err != nil {
				t.Errorf("%s: signing key: %v", who, err)
			}
		}
	}
	if c := cfg.TLS; c != nil {
		if _, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile); err != nil {
			t.Errorf("%s: TLS certificate: %v", who, err)
		}
	}
	return cfg
}

// checkListeners: every published port ("[ip:]host:container") is served
// by a listener that binds more than loopback (a container's loopback is
// its own), and the admin port is published to the host's loopback only.
func checkListeners(cfg *config.Config, published []string) []error {
	type listener struct{ name, host string }
	byPort := map[string]listener{}
	add := func(name, addr string) {
		if host, port, err := net.SplitHostPort(addr); err == nil {
			byPort[port] = listener{name, host}
		}
	}
	if cfg.Receiving() {
		add("listen", cfg.Listen)
	}
	add("admin_listen", cfg.AdminListen)
	var errs []error
	for _, p := range published {
		parts := strings.Split(strings.SplitN(p, "/", 2)[0], ":")
		ip, container := "", parts[len(parts)-1]
		if len(parts) == 3 {
			ip = parts[0]
		}
		l, ok := byPort[container]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("publishes %s, but no listener serves container port %s", p, container))
		case loopback(l.host):
			errs = append(errs, fmt.Errorf("publishes %s, but %s binds %s: inside a container that is the container's own loopback, unreachable from the host", p, l.name, l.host))
		case l.name == "admin_listen" && ip != "127.0.0.1":
			errs = append(errs, fmt.Errorf("publishes the admin port (health, metrics) as %s: publish it to the host's loopback only, 127.0.0.1:%s:%s", p, container, container))
		}
	}
	return errs
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
