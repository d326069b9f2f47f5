package charts

import (
	"encoding/base64"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/fake"
)

// cluster answers the chart's lookup calls as an API server holding objs
// would (a fake dynamic client: `helm template` has no cluster to ask).
type cluster struct{ objs []runtime.Object }

func (c cluster) GetClientFor(apiVersion, kind string) (dynamic.NamespaceableResourceInterface, bool, error) {
	gvr := schema.GroupVersionResource{Version: apiVersion, Resource: strings.ToLower(kind) + "s"}
	return fake.NewSimpleDynamicClient(runtime.NewScheme(), c.objs...).Resource(gvr), true, nil
}

// upgrade renders the chart as `helm upgrade` does (Helm's own engine,
// release "gate" in namespace "hooks"), lookup answered by c. It returns
// the documents and the rendered NOTES.txt.
func upgrade(t *testing.T, c cluster, values string) ([]manifest, string, error) {
	t.Helper()
	chrt, err := loader.Load("tokengate")
	if err != nil {
		t.Fatal(err)
	}
	vals, err := chartutil.ReadValues([]byte(values))
	if err != nil {
		t.Fatal(err)
	}
	top, err := chartutil.ToRenderValues(chrt, vals, chartutil.ReleaseOptions{Name: "gate", Namespace: "hooks", Revision: 2, IsUpgrade: true}, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	out, err := engine.RenderWithClientProvider(chrt, top, c)
	if err != nil {
		return nil, "", err
	}
	var names []string
	for n := range out {
		names = append(names, n)
	}
	sort.Strings(names)
	var docs []manifest
	for _, n := range names {
		if strings.HasSuffix(n, "NOTES.txt") {
			continue
		}
		for _, d := range strings.Split(out[n], "\n---") {
			var m manifest
			if err := yaml.Unmarshal([]byte(d+"\n"), &m); err != nil {
				t.Fatalf("%s: %v", n, err)
			}
			if m != nil {
				docs = append(docs, m)
			}
		}
	}
	return docs, out["tokengate/templates/NOTES.txt"], nil
}

// secretObject is a Secret as the API server returns it (data base64).
func secretObject(name string, data map[string]any) *unstructured.Unstructured {
	enc := map[string]any{}
	for k, v := range data {
		enc[k] = base64.StdEncoding.EncodeToString([]byte(v.(string)))
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]any{"name": name, "namespace": "hooks"},
		"data":     enc,
	}}
}

// TestGeneratedSecretsAreKeptAcrossUpgrades: the first install generates
// the signing key and the client secret; an upgrade finds them in the
// cluster (lookup) and renders the very same ones, so tokens issued before
// the upgrade stay valid and senders keep their secret. Once the
// plain-text client Secret is deleted (handed over), upgrades keep the hash
// and do not bring the plain text back or make a new one.
func TestGeneratedSecretsAreKeptAcrossUpgrades(t *testing.T) {
	first, notes, err := upgrade(t, cluster{}, "")
	if err != nil {
		t.Fatal(err)
	}
	sec, plain := find(first, "Secret", "-secrets"), find(first, "Secret", "-client-secrets")
	if sec == nil || plain == nil {
		t.Fatal("the first install generated nothing")
	}
	if !strings.Contains(notes, "gate-tokengate-client-secrets") || !strings.Contains(notes, "aftership") {
		t.Errorf("NOTES do not say where the generated client secret is:\n%s", notes)
	}
	data := get(sec, "stringData").(map[string]any)
	live := cluster{objs: []runtime.Object{
		secretObject("gate-tokengate-secrets", data),
		secretObject("gate-tokengate-client-secrets", get(plain, "stringData").(map[string]any)),
	}}
	second, _, err := upgrade(t, live, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"signing.pem", "aftership.hash"} {
		if got := get(find(second, "Secret", "-secrets"), "stringData", k); got != data[k] {
			t.Errorf("the upgrade replaced %s (%d bytes, was %d)", k, len(toString2(got)), len(toString2(data[k])))
		}
	}
	if get(find(second, "Secret", "-client-secrets"), "stringData", "aftership") != get(plain, "stringData", "aftership") {
		t.Error("the upgrade changed the sender's client secret")
	}
	a := get(find(first, "Deployment", ""), "spec", "template", "metadata", "annotations", "checksum/secret")
	b := get(find(second, "Deployment", ""), "spec", "template", "metadata", "annotations", "checksum/secret")
	if a == nil || a != b {
		t.Errorf("checksum/secret changed across the upgrade (%v → %v): the pods would roll for nothing", a, b)
	}

	handedOver := cluster{objs: []runtime.Object{secretObject("gate-tokengate-secrets", data)}}
	third, _, err := upgrade(t, handedOver, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := get(find(third, "Secret", "-secrets"), "stringData", "aftership.hash"); got != data["aftership.hash"] {
		t.Error("after the plain-text Secret was deleted, the upgrade made a new client secret")
	}
	if find(third, "Secret", "-client-secrets") != nil {
		t.Error("after the plain-text Secret was deleted, the upgrade rendered it again")
	}
}

// TestExistingSecretIsChecked: with secret.existingSecret, an install that
// finds that Secret in the cluster refuses when it lacks a file the config
// names (the pod would not start); nothing is generated for it.
func TestExistingSecretIsChecked(t *testing.T) {
	values := "secret: { existingSecret: webhook-secrets }\n"
	c := cluster{objs: []runtime.Object{secretObject("webhook-secrets", map[string]any{"signing.pem": "k"})}}
	_, _, err := upgrade(t, c, values)
	if err == nil || !strings.Contains(err.Error(), "/secrets/aftership.hash") || !strings.Contains(err.Error(), "webhook-secrets") {
		t.Fatalf("err = %v, want a refusal naming the missing file and the Secret", err)
	}
	c = cluster{objs: []runtime.Object{secretObject("webhook-secrets", map[string]any{"signing.pem": "k", "aftership.hash": "h"})}}
	docs, _, err := upgrade(t, c, values)
	if err != nil {
		t.Fatal(err)
	}
	if s := find(docs, "Secret", ""); s != nil {
		t.Errorf("existingSecret given, yet the chart renders a Secret: %v", get(s, "metadata", "name"))
	}
}
