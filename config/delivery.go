package config

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"
)

// Delivery modes (Delivery.Mode).
const (
	// DeliveryDirect forwards a request while its sender waits (default).
	DeliveryDirect = "direct"
	// DeliveryQueued stores a verified request, answers the sender
	// ack_status, and delivers it to the receiver until it takes it.
	DeliveryQueued = "queued"
)

// Defaults of queued delivery.
const (
	DefaultAckStatus           = 202
	DefaultDeliveryMaxAttempts = 25
	DefaultDeliveryMaxAge      = 72 * time.Hour
	DefaultBackoffInitial      = time.Second
	DefaultBackoffMax          = 10 * time.Minute
	DefaultDeliveryConcurrency = 4
	DefaultDeliveryTimeout     = 30 * time.Second
	DefaultQueueStore          = "file:///var/lib/tokengate/queue"
	DefaultQueueMaxBytes       = 1 << 30
	maxDeliveryConcurrency     = 1024
)

// statusRE is a status code (204) or class (2xx).
var statusRE = regexp.MustCompile(`^[1-5]([0-9][0-9]|xx)$`)

// Delivery is how a route hands verified requests to the receiver.
type Delivery struct {
	// Mode is direct (default) or queued.
	Mode string `yaml:"mode"`
	// AckStatus is what the sender gets once its message is stored (a
	// 2xx). Default 202.
	AckStatus int `yaml:"ack_status"`
	// Success are the receiver's answers that count as taken, as codes
	// (204) or classes (2xx). Default [2xx].
	Success []string `yaml:"success"`
	// RetryOn are 4xx answers tried again: by default a 4xx other than
	// 408, 409, 425 and 429 makes a dead letter at once.
	RetryOn []string `yaml:"retry_on"`
	// MaxAttempts, then the message is a dead letter. Default 25.
	MaxAttempts int `yaml:"max_attempts"`
	// MaxAge after arrival, then the message is a dead letter. Default 72h.
	MaxAge Duration `yaml:"max_age"`
	// Backoff between attempts: exponential with jitter; a receiver's
	// Retry-After (429, 503) wins.
	Backoff Backoff `yaml:"backoff"`
	// Concurrency bounds the route's attempts in flight. Default 4.
	Concurrency int `yaml:"concurrency"`
	// Timeout bounds one attempt. Default 30s.
	Timeout Duration `yaml:"timeout"`
}

// Backoff is an exponential backoff's first and largest wait.
type Backoff struct {
	// Initial wait after the first failed attempt. Default 1s.
	Initial Duration `yaml:"initial"`
	// Max wait. Default 10m.
	Max Duration `yaml:"max"`
}

// Queue is where queued routes keep their messages.
type Queue struct {
	// Store is file:///absolute/dir (the embedded store, default
	// file:///var/lib/tokengate/queue; one gate process at a time) or a
	// redis:// or rediss:// URL (shared by replicas).
	Store string `yaml:"store"`
	// MaxBytes bounds the stored messages' bytes (dead letters included);
	// past it senders get 503 with Retry-After. Default 1GiB.
	MaxBytes ByteSize `yaml:"max_bytes"`
}

// Queued reports whether the route stores its requests for delivery.
func (r *Route) Queued() bool { return r.Delivery != nil && r.Delivery.Mode == DeliveryQueued }

// QueuedRoutes reports whether any route is queued (the gate then opens
// the queue store and runs the delivery worker).
func (c *Config) QueuedRoutes() bool {
	for i := range c.Routes {
		if c.Routes[i].Queued() {
			return true
		}
	}
	return false
}

// FileDir is the embedded store's directory, when Store is a file URL.
func (q *Queue) FileDir() (string, bool) {
	u, err := url.Parse(q.Store)
	if err != nil || u.Scheme != "file" {
		return "", false
	}
	return u.Path, true
}

func (c *Config) deliveryDefaults() {
	setDefault(&c.Queue.Store, DefaultQueueStore)
	setDefault(&c.Queue.MaxBytes, ByteSize(DefaultQueueMaxBytes))
	for i := range c.Routes {
		d := c.Routes[i].Delivery
		if d == nil {
			continue
		}
		setDefault(&d.Mode, DeliveryDirect)
		if d.Mode != DeliveryQueued {
			continue
		}
		setDefault(&d.AckStatus, DefaultAckStatus)
		if len(d.Success) == 0 {
			d.Success = []string{"2xx"}
		}
		setDefault(&d.MaxAttempts, DefaultDeliveryMaxAttempts)
		setDefault(&d.MaxAge, Duration(DefaultDeliveryMaxAge))
		setDefault(&d.Backoff.Initial, Duration(DefaultBackoffInitial))
		setDefault(&d.Backoff.Max, max(Duration(DefaultBackoffMax), d.Backoff.Initial))
		setDefault(&d.Concurrency, DefaultDeliveryConcurrency)
		setDefault(&d.Timeout, Duration(DefaultDeliveryTimeout))
	}
}

// delivery validates the routes' delivery blocks and the queue store.
func (v *validator) delivery() {
	queued := map[string]int{}
	var largest ByteSize
	for i, r := range v.c.Routes {
		d := r.Delivery
		if d == nil {
			continue
		}
		p := fmt.Sprintf("routes[%d].delivery", i)
		switch d.Mode {
		case DeliveryDirect:
			if d.AckStatus != 0 || d.Success != nil || d.RetryOn != nil || d.MaxAttempts != 0 || d.MaxAge != 0 || d.Backoff != (Backoff{}) || d.Concurrency != 0 || d.Timeout != 0 {
				v.add(p+".mode", "the other delivery settings apply only to mode: queued")
			}
			continue
		case DeliveryQueued:
		default:
			v.add(p+".mode", "must be direct or queued, got %q", d.Mode)
			continue
		}
		if j, dup := queued[r.Name]; dup {
			v.add(fmt.Sprintf("routes[%d].name", i), "%q is also the name of queued routes[%d]: queued messages are filed by route name (set name:)", r.Name, j)
		}
		queued[r.Name] = i
		if r.WebSocket {
			v.add(p+".mode", "a websocket route cannot be queued: a tunnel cannot be stored")
		}
		if r.Public {
			v.add(p+".mode", "a public route cannot be queued: anyone could fill the queue (queue.max_bytes is shared by every queued route)")
		}
		if d.AckStatus < 200 || d.AckStatus > 299 {
			v.add(p+".ack_status", "must be a 2xx status, got %d", d.AckStatus)
		}
		for j, c := range d.Success {
			if !statusRE.MatchString(c) {
				v.add(fmt.Sprintf("%s.success[%d]", p, j), "%q: write a status (204) or a class (2xx)", c)
			}
		}
		for j, c := range d.RetryOn {
			if !statusRE.MatchString(c) || c[0] != '4' {
				v.add(fmt.Sprintf("%s.retry_on[%d]", p, j), "%q: write a 4xx status (404) or 4xx", c)
			}
		}
		if d.MaxAttempts < 1 {
			v.add(p+".max_attempts", "must be at least 1")
		}
		if d.MaxAge.D() < time.Minute {
			v.add(p+".max_age", "must be at least 1m, got %s", d.MaxAge.D())
		}
		if d.Backoff.Initial <= 0 || d.Backoff.Max < d.Backoff.Initial {
			v.add(p+".backoff", "initial must be positive and max at least initial")
		}
		if d.Concurrency < 1 || d.Concurrency > maxDeliveryConcurrency {
			v.add(p+".concurrency", "must be between 1 and %d", maxDeliveryConcurrency)
		}
		if d.Timeout <= 0 {
			v.add(p+".timeout", "must be positive")
		}
		// A request with a token (auth: any takes one) is held to
		// upstream.max_body_size; a route that takes only signed
		// requests to the signature's, which is at most that.
		body := v.c.Upstream.MaxBodySize
		if r.Signature != nil && r.Auth != AuthAny {
			body = r.Signature.MaxBodySize
		} else if body > v.c.Signatures.BodyMemory {
			v.add(p+".mode", "a queued body is held in memory while it is stored: upstream.max_body_size (%d) must be at most signatures.body_memory (%d)", body, v.c.Signatures.BodyMemory)
		}
		largest = max(largest, body)
	}
	if len(queued) > 0 {
		v.queueStore(largest)
	}
}

// MessageOverhead is what a stored message may take beside its body: its
// request head (the listener takes at most 256 KiB of it, plus net/http's
// 4 KiB of slack), with room for a query stored escaped as the receiver
// gets it (up to three times its length: "!" becomes "%21"), the headers
// the gate adds and the store's record.
const MessageOverhead ByteSize = 1 << 20

// queueStore validates the queue block, needed once a route is queued.
func (v *validator) queueStore(largest ByteSize) {
	q := v.c.Queue
	u, err := url.Parse(q.Store)
	switch {
	case err != nil && strings.HasPrefix(q.Store, "redis"):
		v.redisURL("queue.store", q.Store) // says why, without the URL
	case err != nil:
		v.add("queue.store", "must be file:///absolute/dir or a redis:// or rediss:// URL")
	case u.Scheme == "file":
		if u.Host != "" || !strings.HasPrefix(u.Path, "/") || path.Clean(u.Path) != u.Path || u.RawQuery != "" {
			v.add("queue.store", "a file store is file:///absolute/clean/dir (three slashes), got %q", q.Store)
		}
	case u.Scheme == "redis" || u.Scheme == "rediss":
		v.redisURL("queue.store", q.Store)
	default:
		v.add("queue.store", "must be file:///absolute/dir or a redis:// or rediss:// URL, got scheme %q", u.Scheme)
	}
	if need := largest + MessageOverhead; q.MaxBytes < need {
		v.add("queue.max_bytes", "must hold at least one message of the largest body a queued route takes: %d (the body, %d, and %d for its head and what the gate stores beside it)", need, largest, MessageOverhead)
	}
}

// RedactedURL is a store URL (queue.store, redis.url, replay_store) as it
// may be shown: without its password, and never the raw text of one that
// does not parse (it could hold the password unescaped).
func RedactedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
