package config

import (
	"strings"
	"testing"
	"time"
)

const queuedYAML = `
upstream: "http://127.0.0.1:9000"
routes:
  - name: github
    path: /webhooks/github
    signature: { scheme: github, secrets: ["${GH_SECRET}"] }
    delivery:
      mode: queued
      max_attempts: 10
      backoff: { initial: 2s }
  - name: plain
    path: /webhooks/plain
    public: true

`

// TestQueuedRouteDefaults: a queued route gets every documented default,
// and the queue its embedded store; a route without delivery stays direct.
func TestQueuedRouteDefaults(t *testing.T) {
	cfg, err := Parse([]byte(queuedYAML), t.TempDir(), env("GH_SECRET", "s"))
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Routes[0].Delivery
	if !cfg.Routes[0].Queued() || cfg.Routes[1].Queued() || !cfg.QueuedRoutes() {
		t.Fatal("queued flags wrong")
	}
	if d.AckStatus != 202 || strings.Join(d.Success, ",") != "2xx" || d.MaxAttempts != 10 || d.MaxAge.D() != 72*time.Hour ||
		d.Backoff.Initial.D() != 2*time.Second || d.Backoff.Max.D() != 10*time.Minute || d.Concurrency != 4 || d.Timeout.D() != 30*time.Second {
		t.Fatalf("defaults: %+v", d)
	}
	if dir, ok := cfg.Queue.FileDir(); !ok || dir != "/var/lib/tokengate/queue" || cfg.Queue.MaxBytes != 1<<30 {
		t.Fatalf("queue defaults: %+v", cfg.Queue)
	}
}

// TestDeliveryValidation: each mistake is reported with its YAML path.
func TestDeliveryValidation(t *testing.T) {
	for _, c := range []struct {
		name, yaml, path, want string
	}{
		{"unknown mode", "routes:\n  - path: /a\n    signature: { scheme: github, secrets: [\"${GH}\"] }\n    delivery: { mode: later }", "routes[0].delivery.mode", "must be direct or queued"},
		{"settings without queued", "routes:\n  - path: /a\n    signature: { scheme: github, secrets: [\"${GH}\"] }\n    delivery: { max_attempts: 3 }", "routes[0].delivery.mode", "apply only to mode: queued"},
		{"unknown key", "routes:\n  - path: /a\n    signature: { scheme: github, secrets: [\"${GH}\"] }\n    delivery: { mode: queued, retries: 3 }", "routes[0].delivery.retries", "unknown field"},
		{"ack not 2xx", "routes:\n  - path: /a\n    signature: { scheme: github, secrets: [\"${GH}\"] }\n    delivery: { mode: queued, ack_status: 302 }", "routes[0].delivery.ack_status", "2xx"},
		{"bad success", "routes:\n  - path: /a\n    signature: { scheme: github, secrets: [\"${GH}\"] }\n    delivery: { mode: queued, success: [2x] }", "routes[0].delivery.success[0]", "status"},
		{"retry_on not 4xx", "routes:\n  - path: /a\n    signature: { scheme: github, secrets: [\"${GH}\"] }\n    delivery: { mode: queued, retry_on: [500] }", "routes[0].delivery.retry_on[0]", "4xx"},
		{"zero attempts", "routes:\n  - path: /a\n    signature: { scheme: github, secrets: [\"${GH}\"] }\n    delivery: { mode: queued, max_attempts: -1 }", "routes[0].delivery.max_attempts", "at least 1"},
		{"short max_age", "routes:\n  - path: /a\n    signature: { scheme: github, secrets: [\"${GH}\"] }\n    delivery: { mode: queued, max_age: 10s }", "routes[0].delivery.max_age", "at least 1m"},
		{"backoff max below initial", "routes:\n  - path: /a\n    signature: { scheme: github, secrets: [\"${GH}\"] }\n    delivery: { mode: queued, backoff: { initial: 1m, max: 1s } }", "routes[0].delivery.backoff", "max at least initial"},
		{"concurrency", "routes:\n  - path: /a\n    signature: { scheme: github, secrets: [\"${GH}\"] }\n    delivery: { mode: queued, concurrency: 5000 }", "routes[0].delivery.concurrency", "between 1 and 1024"},
		{"websocket", "routes:\n  - path: /a\n    public: true\n    websocket: true\n    delivery: { mode: queued }", "routes[0].delivery.mode", "websocket"},
		{"same name", "routes:\n  - { name: x, path: /a, signature: { scheme: github, secrets: [\"${GH}\"] }, delivery: { mode: queued } }\n  - { name: x, path: /b, signature: { scheme: github, secrets: [\"${GH}\"] }, delivery: { mode: queued } }", "routes[1].name", "filed by route name"},
		{"relative file store", "routes:\n  - path: /a\n    signature: { scheme: github, secrets: [\"${GH}\"] }\n    delivery: { mode: queued }\nqueue: { store: file://var/q }", "queue.store", "file:///absolute"},
		{"other scheme", "routes:\n  - path: /a\n    signature: { scheme: github, secrets: [\"${GH}\"] }\n    delivery: { mode: queued }\nqueue: { store: s3://bucket }", "queue.store", "scheme"},
		{"redis password in file", "routes:\n  - path: /a\n    signature: { scheme: github, secrets: [\"${GH}\"] }\n    delivery: { mode: queued }\nqueue: { store: 'redis://:pw@127.0.0.1:6379' }", "queue.store", "environment"},
		{"public", "routes:\n  - path: /a\n    public: true\n    delivery: { mode: queued }", "routes[0].delivery.mode", "public route cannot be queued"},
		{"max_bytes below a body", "routes:\n  - path: /a\n    signature: { scheme: github, secrets: [\"${GH}\"] }\n    delivery: { mode: queued }\nqueue: { max_bytes: 1KiB }", "queue.max_bytes", "at least one message"},
		// An outside attack: max_bytes equal to the largest body passed,
		// yet no message of that body ever fit (its head is stored too).
		// A third: on auth: any a sender with a token is held to
		// upstream.max_body_size (10MiB by default), not the signature's.
		{"max_bytes for auth any", "routes:\n  - path: /a\n    auth: any\n    signature: { scheme: github, secrets: [\"${GH}\"], max_body_size: 1MiB }\n    delivery: { mode: queued }\nqueue: { max_bytes: 3MiB }", "queue.max_bytes", "the body, 10485760"},
		{"max_bytes only the body", "routes:\n  - path: /a\n    signature: { scheme: github, secrets: [\"${GH}\"], max_body_size: 64KiB }\n    delivery: { mode: queued }\nqueue: { max_bytes: 64KiB }", "queue.max_bytes", "1114112 (the body, 65536, and 1048576"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte("upstream: http://127.0.0.1:9000\n"+c.yaml), t.TempDir(), env("GH", "s"))
			if err == nil || !strings.Contains(err.Error(), c.path+": ") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v\nwant %s: …%s…", err, c.path, c.want)
			}
		})
	}
}

// TestQueueStoreForms: the accepted store URLs.
func TestQueueStoreForms(t *testing.T) {
	for _, store := range []string{"file:///var/lib/tokengate/queue", "redis://127.0.0.1:6379/0", "rediss://:${PW}@redis.internal:6380"} {
		y := "upstream: http://127.0.0.1:9000\nroutes:\n  - path: /a\n    signature: { scheme: github, secrets: [\"${GH}\"] }\n    delivery: { mode: queued }\nqueue: { store: '" + store + "' }"
		if _, err := Parse([]byte(y), t.TempDir(), env("PW", "secret", "GH", "s")); err != nil {
			t.Errorf("%s: %v", store, err)
		}
	}
}

func TestRedactedURLNeverShowsAPassword(t *testing.T) {
	for _, c := range []struct{ raw, want string }{
		{"redis://:hunter2@127.0.0.1:6379/0", "redis://:xxxxx@127.0.0.1:6379/0"},
		{"file:///var/lib/tokengate/queue", "file:///var/lib/tokengate/queue"},
		{"redis://:Gen^Pass{Top}Secret|9@127.0.0.1:1/0", "(unparsable URL)"},
	} {
		if got := RedactedURL(c.raw); got != c.want || strings.Contains(got, "hunter2") {
			t.Errorf("RedactedURL(%q) = %q, want %q", c.raw, got, c.want)
		}
	}
}
