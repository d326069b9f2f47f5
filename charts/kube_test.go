package charts

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	kjson "sigs.k8s.io/json"
	kyaml "sigs.k8s.io/yaml"
)

// kubeTypes are the API types the chart's manifests must decode into, as
// the API server would read them. ServiceMonitor is a CRD of the
// Prometheus operator, not in k8s.io/api: it is checked by helm lint only.
var kubeTypes = map[string]func() any{
	"Deployment":            func() any { return &appsv1.Deployment{} },
	"Service":               func() any { return &corev1.Service{} },
	"ConfigMap":             func() any { return &corev1.ConfigMap{} },
	"Secret":                func() any { return &corev1.Secret{} },
	"PersistentVolumeClaim": func() any { return &corev1.PersistentVolumeClaim{} },
	"NetworkPolicy":         func() any { return &networkingv1.NetworkPolicy{} },
	"PodDisruptionBudget":   func() any { return &policyv1.PodDisruptionBudget{} },
}

// TestRenderedManifestsDecodeStrictlyIntoKubernetesTypes decodes every
// rendered document into its Kubernetes API type with unknown and
// duplicate fields refused, so a misspelt or misplaced field fails here as
// the cluster would refuse it.
func TestRenderedManifestsDecodeStrictlyIntoKubernetesTypes(t *testing.T) {
	extras := []string{"--set", "replicaCount=1", "--set", "persistence.enabled=true", "--set", "persistence.storageClass=fast",
		"--set", "extraVolumes[0].name=x", "--set", "extraVolumes[0].emptyDir.medium=Memory",
		"--set", "extraVolumeMounts[0].name=x", "--set", "extraVolumeMounts[0].mountPath=/x"}
	for _, values := range [][]string{nil, {"-f", "tokengate/ci-values.yaml"}, extras} {
		t.Run(strings.Join(values, " "), func(t *testing.T) {
			checked := 0
			for _, doc := range renderDocs(t, values...) {
				var head struct {
					Kind string `json:"kind"`
				}
				if err := kyaml.Unmarshal([]byte(doc), &head); err != nil {
					t.Fatalf("not YAML: %v\n%s", err, doc)
				}
				newObj, ok := kubeTypes[head.Kind]
				if !ok {
					if head.Kind != "ServiceMonitor" {
						t.Errorf("kind %q has no API type to check against", head.Kind)
					}
					continue
				}
				if err := decodeStrict(doc, newObj()); err != nil {
					t.Errorf("%s does not decode strictly: %v\n%s", head.Kind, err, doc)
				}
				checked++
			}
			if checked < 4 {
				t.Fatalf("only %d documents checked", checked)
			}
		})
	}
}

func TestStrictDecodingRefusesAMisplacedField(t *testing.T) {
	doc := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: 1\n  template:\n    spec:\n      containers:\n        - name: a\n          image: b\n          readinessprobe: {}\n"
	if err := decodeStrict(doc, &appsv1.Deployment{}); err == nil {
		t.Fatal("a misspelt field (readinessprobe) was accepted")
	}
	dup := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\ndata: {c: d}\n"
	if err := decodeStrict(dup, &corev1.ConfigMap{}); err == nil {
		t.Fatal("a duplicate field was accepted")
	}
}

// decodeStrict reads a YAML document as the API server does: field names
// matched case-sensitively, unknown and duplicate fields refused.
func decodeStrict(doc string, obj any) error {
	j, err := kyaml.YAMLToJSONStrict([]byte(doc))
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(j, obj)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// renderDocs renders the chart and returns each YAML document.
func renderDocs(t *testing.T, args ...string) []string {
	t.Helper()
	cmd := exec.Command(helm(t), append([]string{"template", "gate", "./tokengate"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm template: %v\n%s", err, errb.String())
	}
	var docs []string
	for _, d := range strings.Split(out.String(), "\n---") {
		if strings.TrimSpace(strings.TrimPrefix(d, "---")) != "" && strings.Contains(d, "kind:") {
			docs = append(docs, d)
		}
	}
	if len(docs) == 0 {
		t.Fatalf("no documents rendered:\n%s", out.String())
	}
	return docs
}
