// Package charts holds the Helm chart's tests: they render the chart with
// the real helm binary and check the manifests a cluster would receive.
package charts

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"

	"github.com/tokengate/tokengate/config"
)

// helm finds the helm binary. CI installs it and sets
// TOKENGATE_REQUIRE_HELM=1, so there the chart can never go unchecked.
func helm(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("HELM"); p != "" {
		return p
	}
	p, err := exec.LookPath("helm")
	if err != nil {
		if os.Getenv("TOKENGATE_REQUIRE_HELM") != "" {
			t.Fatal("helm is required (TOKENGATE_REQUIRE_HELM is set) but not on PATH")
		}
		t.Skip("helm not installed; .ci/run installs it")
	}
	return p
}

type manifest = map[string]any

// render renders the chart (renderDocs) and decodes each document by kind.
func render(t *testing.T, args ...string) map[string]manifest {
	t.Helper()
	docs := map[string]manifest{}
	for _, d := range renderDocs(t, args...) {
		var m manifest
		if err := yaml.Unmarshal([]byte(d), &m); err != nil {
			t.Fatal(err)
		}
		if m != nil {
			docs[m["kind"].(string)] = m
		}
	}
	return docs
}

// get walks a path of map keys and list indexes.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(manifest)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func container(t *testing.T, dep manifest, name string) map[string]any {
	t.Helper()
	for _, c := range get(dep, "spec", "template", "spec", "containers").([]any) {
		if c.(map[string]any)["name"] == name {
			return c.(map[string]any)
		}
	}
	t.Fatalf("no container %q", name)
	return nil
}

func TestChartRendersASidecarDeployment(t *testing.T) {
	for _, values := range [][]string{nil, {"-f", "tokengate/ci-values.yaml"}} {
		t.Run(strings.Join(values, " "), func(t *testing.T) {
			docs := render(t, values...)
			dep := docs["Deployment"]
			if dep == nil {
				t.Fatal("no Deployment")
			}
			if n := len(get(dep, "spec", "template", "spec", "containers").([]any)); n != 2 {
				t.Fatalf("%d containers, want receiver + tokengate", n)
			}
			tg := container(t, dep, "tokengate")
			if get(tg, "livenessProbe", "httpGet", "path") != "/healthz" || get(tg, "livenessProbe", "httpGet", "port") != "admin" {
				t.Errorf("liveness probe = %v", tg["livenessProbe"])
			}
			if get(tg, "readinessProbe", "httpGet", "path") != "/readyz" || get(tg, "readinessProbe", "httpGet", "port") != "admin" {
				t.Errorf("readiness probe = %v", tg["readinessProbe"])
			}
			sc := tg["securityContext"]
			if get(sc, "runAsNonRoot") != true || get(sc, "readOnlyRootFilesystem") != true || get(sc, "allowPrivilegeEscalation") != false || get(sc, "capabilities", "drop", 0) != "ALL" {
				t.Errorf("securityContext = %v", sc)
			}
			if get(tg, "resources", "limits", "memory") == nil {
				t.Errorf("no memory limit: %v", tg["resources"])
			}
			if get(dep, "spec", "template", "metadata", "annotations", "checksum/config") == nil {
				t.Error("no checksum/config annotation")
			}
			// The Service targets tokengate's port, never the receiver's.
			svc := docs["Service"]
			target := get(svc, "spec", "ports", 0, "targetPort")
			if target != "http" || get(tg, "ports", 0, "name") != "http" {
				t.Errorf("service targets %v; tokengate ports %v", target, tg["ports"])
			}
			recv := container(t, dep, "receiver")
			if get(recv, "ports", 0, "name") == target {
				t.Error("the Service targets the receiver")
			}
			validateConfig(t, docs["ConfigMap"], get(recv, "ports", 0, "containerPort"))
			if get(tg, "env", 0, "name") != "POD_IP" || get(tg, "env", 0, "valueFrom", "fieldRef", "fieldPath") != "status.podIP" {
				t.Errorf("tokengate env = %v, want POD_IP from status.podIP", tg["env"])
			}
			checkNetworkPolicy(t, docs["NetworkPolicy"], len(values) > 0)
			if len(values) > 0 {
				if docs["ServiceMonitor"] == nil || docs["PodDisruptionBudget"] == nil {
					t.Error("ci values enable a ServiceMonitor and a PodDisruptionBudget")
				}
				if !strings.Contains(toString(get(docs["ConfigMap"], "data", "config.yaml")), "deployteq") {
					t.Error("the ci values' egress entry is not in the rendered config")
				}
				if docs["Secret"] != nil {
					t.Error("an existingSecret was given: the chart must not create one")
				}
				if get(dep, "spec", "template", "spec", "volumes", 1, "secret", "secretName") != "webhook-secrets" {
					t.Errorf("volumes = %v", get(dep, "spec", "template", "spec", "volumes"))
				}
			}
		})
	}
}

// checkNetworkPolicy: the public port is open, the admin port only to the
// sources networkPolicy.adminFrom names (none by default).
func checkNetworkPolicy(t *testing.T, np manifest, withAdminFrom bool) {
	t.Helper()
	if np == nil {
		t.Fatal("no NetworkPolicy")
	}
	rules, _ := get(np, "spec", "ingress").([]any)
	adminRules := 0
	for i := range rules {
		for j := range get(np, "spec", "ingress", i, "ports").([]any) {
			switch toString(get(np, "spec", "ingress", i, "ports", j, "port")) {
			case "9090":
				adminRules++
				if get(np, "spec", "ingress", i, "from") == nil {
					t.Error("the admin port is open to every source")
				}
			case "8080":
			default:
				t.Errorf("unexpected port in %v", rules[i])
			}
		}
	}
	if withAdminFrom != (adminRules == 1) {
		t.Errorf("admin port rules = %d (adminFrom set: %v): %v", adminRules, withAdminFrom, rules)
	}
}

// validateConfig runs the ConfigMap's config through tokengate's own
// validation, with the Secret's files stood in by real ones.
func validateConfig(t *testing.T, cm manifest, receiverPort any) {
	t.Helper()
	raw, _ := get(cm, "data", "config.yaml").(string)
	if raw == "" {
		t.Fatal("ConfigMap has no config.yaml")
	}
	dir := t.TempDir()
	hash, _ := bcrypt.GenerateFromPassword([]byte("x"), bcrypt.MinCost)
	for name, data := range map[string][]byte{"aftership.hash": hash, "deployteq-client-secret": []byte("x\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := func(k string) (string, bool) {
		if k == "POD_IP" {
			return "192.0.2.10", true // TEST-NET-1: only parsed, never dialled
		}
		return os.LookupEnv(k)
	}
	cfg, err := config.Parse([]byte(strings.ReplaceAll(raw, "/secrets/", dir+"/")), dir, config.Options{LookupEnv: env})
	if err != nil {
		t.Fatalf("the chart's config fails tokengate's validation: %v\n%s", err, raw)
	}
	if cfg.AdminListen != "192.0.2.10:9090" {
		t.Errorf("admin_listen = %q, want the pod IP (${POD_IP}) so only probes and allowed scrapers reach it", cfg.AdminListen)
	}
	for _, e := range cfg.Egress {
		if !strings.HasPrefix(e.Listen, "127.0.0.1:") || e.Token.ClientSecret != "x" {
			t.Errorf("egress %s: listen %q, secret from the mounted file: %v", e.Name, e.Listen, e.Token.ClientSecret == "x")
		}
	}
	if want := "http://127.0.0.1:"; !strings.HasPrefix(cfg.Upstream.URL, want) || !strings.HasSuffix(cfg.Upstream.URL, ":"+toString(receiverPort)) {
		t.Errorf("upstream = %q, want the receiver in the pod (port %v)", cfg.Upstream.URL, receiverPort)
	}
}

func toString(v any) string {
	b, _ := yaml.Marshal(v)
	return strings.TrimSpace(string(b))
}

func TestConfigChangeChangesTheChecksum(t *testing.T) {
	a := render(t)
	b := render(t, "--set", "tokengate.config.shutdown_grace=20s")
	ca := get(a["Deployment"], "spec", "template", "metadata", "annotations", "checksum/config")
	cb := get(b["Deployment"], "spec", "template", "metadata", "annotations", "checksum/config")
	if ca == nil || ca == cb {
		t.Fatalf("checksum did not change with the config: %v %v", ca, cb)
	}
}
