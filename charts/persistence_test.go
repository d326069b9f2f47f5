package charts

import (
	"strings"
	"testing"
)

// volume returns the pod's volume of that name.
func volume(dep manifest, name string) map[string]any {
	vols, _ := get(dep, "spec", "template", "spec", "volumes").([]any)
	for _, v := range vols {
		if m := v.(map[string]any); m["name"] == name {
			return m
		}
	}
	return nil
}

// volumeMount returns the tokengate container's mount of that volume.
func volumeMount(t *testing.T, dep manifest, name string) map[string]any {
	t.Helper()
	mounts, _ := container(t, dep, "tokengate")["volumeMounts"].([]any)
	for _, v := range mounts {
		if m := v.(map[string]any); m["name"] == name {
			return m
		}
	}
	return nil
}

// TestPersistence: persistence.enabled renders a PersistentVolumeClaim
// (size, storage class, access modes as given) mounted writable at
// mountPath in the tokengate container, and the pods are replaced, not
// rolled (a ReadWriteOnce volume attaches to one node); existingClaim uses
// that claim and creates none; several replicas on a ReadWriteOnce volume
// are refused, on ReadWriteMany they roll.
func TestPersistence(t *testing.T) {
	docs := renderAll(t, "--set", "replicaCount=1", "--set", "persistence.enabled=true",
		"--set", "persistence.size=1Gi", "--set", "persistence.storageClass=fast")
	pvc := find(docs, "PersistentVolumeClaim", "-state")
	if pvc == nil {
		t.Fatal("no PersistentVolumeClaim")
	}
	if get(pvc, "spec", "resources", "requests", "storage") != "1Gi" || get(pvc, "spec", "storageClassName") != "fast" || get(pvc, "spec", "accessModes", 0) != "ReadWriteOnce" {
		t.Errorf("claim spec = %v", get(pvc, "spec"))
	}
	dep := find(docs, "Deployment", "")
	if get(volume(dep, "state"), "persistentVolumeClaim", "claimName") != get(pvc, "metadata", "name") {
		t.Errorf("state volume = %v", volume(dep, "state"))
	}
	m := volumeMount(t, dep, "state")
	if m == nil || m["mountPath"] != "/var/lib/tokengate" || m["readOnly"] == true {
		t.Errorf("state mount = %v, want writable at /var/lib/tokengate", m)
	}
	if get(dep, "spec", "strategy", "type") != "Recreate" {
		t.Errorf("strategy = %v, want Recreate", get(dep, "spec", "strategy"))
	}

	docs = renderAll(t, "--set", "replicaCount=1", "--set", "persistence.enabled=true", "--set", "persistence.existingClaim=tokengate-state",
		"--set", "persistence.mountPath=/data")
	if find(docs, "PersistentVolumeClaim", "") != nil {
		t.Error("existingClaim given, yet a claim is created")
	}
	dep = find(docs, "Deployment", "")
	if get(volume(dep, "state"), "persistentVolumeClaim", "claimName") != "tokengate-state" || volumeMount(t, dep, "state")["mountPath"] != "/data" {
		t.Errorf("existingClaim: volume %v", volume(dep, "state"))
	}

	if pvc := find(renderAll(t, "--set", "replicaCount=1", "--set", "persistence.enabled=true", "--set", "persistence.storageClass=-"), "PersistentVolumeClaim", ""); get(pvc, "spec", "storageClassName") != "" {
		t.Errorf(`storageClass "-": storageClassName = %v, want ""`, get(pvc, "spec", "storageClassName"))
	}

	msg := templateFails(t, "--set", "replicaCount=2", "--set", "persistence.enabled=true")
	if !strings.Contains(msg, "replicaCount 2") || !strings.Contains(msg, "ReadWriteMany") {
		t.Fatalf("message does not say what to do:\n%s", msg)
	}
	dep = find(renderAll(t, "--set", "replicaCount=2", "--set", "persistence.enabled=true", "--set", "persistence.accessModes={ReadWriteMany}"), "Deployment", "")
	if get(dep, "spec", "strategy") != nil {
		t.Errorf("ReadWriteMany: strategy %v, want the default rolling update", get(dep, "spec", "strategy"))
	}

	dep = find(renderAll(t), "Deployment", "")
	if volume(dep, "state") != nil || get(dep, "spec", "strategy") != nil {
		t.Error("persistence is off by default")
	}
}

// TestExtraVolumes: extraVolumes are added to the pod and
// extraVolumeMounts to the tokengate container, after the chart's own.
func TestExtraVolumes(t *testing.T) {
	values := valuesFile(t, `extraVolumes:
  - name: ca
    configMap: { name: vendor-ca }
  - name: scratch
    emptyDir: {}
extraVolumeMounts:
  - { name: ca, mountPath: /etc/vendor-ca, readOnly: true }
  - { name: scratch, mountPath: /var/lib/tokengate }
`)
	dep := find(renderAll(t, "-f", values), "Deployment", "")
	if get(volume(dep, "ca"), "configMap", "name") != "vendor-ca" || volume(dep, "scratch")["emptyDir"] == nil {
		t.Errorf("volumes = %v", get(dep, "spec", "template", "spec", "volumes"))
	}
	if m := volumeMount(t, dep, "ca"); m == nil || m["mountPath"] != "/etc/vendor-ca" || m["readOnly"] != true {
		t.Errorf("ca mount = %v", m)
	}
	if m := volumeMount(t, dep, "scratch"); m == nil || m["mountPath"] != "/var/lib/tokengate" {
		t.Errorf("scratch mount = %v", m)
	}
	if volumeMount(t, dep, "config") == nil || volumeMount(t, dep, "secrets") == nil {
		t.Error("the chart's own mounts are gone")
	}
}
