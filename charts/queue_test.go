package charts

import (
	"strings"
	"testing"
)

// queuedValues make the chart's route queued, with the given extra
// top-level config (a queue block).
func queuedValues(t *testing.T, replicas int, queueBlock string) string {
	t.Helper()
	y := "replicaCount: " + string(rune('0'+replicas)) + `
tokengate:
  config:
` + queueBlock + `    routes:
      - name: webhooks
        path_prefix: /hooks
        methods: [POST]
        require: { issuers: [local], scopes: ["webhooks:write"] }
        delivery: { mode: queued }
`
	return valuesFile(t, y)
}

// TestQueuedRoutesNeedAWritableQueueDir: with a queued route and the file
// store, the queue's directory must be on a writable volume (the
// persistence volume or a writable extra mount) and the chart refuses
// more than one replica (one pod holds the store); a redis:// store lets
// replicas share it and needs no volume.
func TestQueuedRoutesNeedAWritableQueueDir(t *testing.T) {
	one := queuedValues(t, 1, "")
	msg := templateFails(t, "-f", one)
	if !strings.Contains(msg, "/var/lib/tokengate/queue") || !strings.Contains(msg, "persistence.enabled=true") {
		t.Fatalf("no volume: the message does not say what to do:\n%s", msg)
	}
	docs := renderAll(t, "-f", one, "--set", "persistence.enabled=true")
	cfg := startsWith(t, docs)
	if !cfg.QueuedRoutes() {
		t.Fatal("the rendered config has no queued route")
	}
	if m := volumeMount(t, find(docs, "Deployment", ""), "state"); m == nil || m["mountPath"] != "/var/lib/tokengate" {
		t.Fatalf("state mount = %v", m)
	}
	scratch := valuesFile(t, `extraVolumes: [{ name: q, persistentVolumeClaim: { claimName: queue } }]
extraVolumeMounts: [{ name: q, mountPath: /queue }]
`)
	renderAll(t, "-f", queuedValues(t, 1, "    queue: { store: \"file:///queue/tokengate\" }\n"), "-f", scratch)
	if msg := templateFails(t, "-f", queuedValues(t, 1, "    queue: { store: \"file:///queue/tokengate\" }\n"), "-f",
		valuesFile(t, "extraVolumes: [{ name: q, emptyDir: {} }]\nextraVolumeMounts: [{ name: q, mountPath: /queue, readOnly: true }]\n")); !strings.Contains(msg, "not on a writable volume") {
		t.Fatalf("read-only mount: %s", msg)
	}

	msg = templateFails(t, "-f", queuedValues(t, 2, ""), "--set", "persistence.enabled=true", "--set", "persistence.accessModes={ReadWriteMany}")
	if !strings.Contains(msg, "use redis:// for replicas") || !strings.Contains(msg, "2 replicas") {
		t.Fatalf("replicas with a file store: the message does not say what to do:\n%s", msg)
	}
	renderAll(t, "-f", queuedValues(t, 2, "    queue: { store: \"redis://redis:6379/0\" }\n"))
}
