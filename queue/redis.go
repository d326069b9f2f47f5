package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/internal/redisurl"
)

// DefaultRedisPrefix namespaces the queue's keys; the braces make every
// key hash to one Redis Cluster slot, so each script's keys go together.
const DefaultRedisPrefix = "{tokengate-queue}:"

// group is the consumer group every replica reads the streams in.
const group = "tokengate"

// RedisOptions configure a RedisStore.
type RedisOptions struct {
	// MaxBytes bounds the stored payloads of all replicas together; zero:
	// no bound.
	MaxBytes int64
	// Lease is how long a message handed to one replica stays its own;
	// past it (the replica died mid-attempt) another claims it with
	// XAUTOCLAIM. It must be longer than any attempt. Default 2m.
	Lease time.Duration
	// Timeout bounds each command. Default 2s.
	Timeout time.Duration
	// Prefix namespaces the keys. Default DefaultRedisPrefix.
	Prefix string
	// Consumer names this replica in the consumer group; default
	// hostname, pid and a random suffix.
	Consumer string
}

// RedisStore is the Store shared by replicas: Redis Streams with one
// consumer group, so each due message goes to one replica, and a
// replica's leased messages are claimed by another (XAUTOCLAIM) when it
// dies. Durability is Redis's own: run it with appendonly yes and
// appendfsync always, or an acknowledged message can be lost with Redis.
type RedisStore struct {
	c        *redis.Client
	o        RedisOptions
	groups   sync.Map // route → struct{}: its group exists
	mu       sync.Mutex
	autoNext map[string]string // route → XAUTOCLAIM cursor
	// maintained is when each route last promoted and claimed.
	maintained map[string]time.Time
}

// OpenRedis connects lazily to a redis:// or rediss:// URL.
func OpenRedis(rawURL string, o RedisOptions) (*RedisStore, error) {
	ro, err := redisurl.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err) // never the URL: it may hold a password
	}
	if o.Lease <= 0 {
		o.Lease = 2 * time.Minute
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Prefix == "" {
		o.Prefix = DefaultRedisPrefix
	}
	if o.Consumer == "" {
		host, _ := os.Hostname()
		var r [4]byte
		_, _ = rand.Read(r[:])
		o.Consumer = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(r[:]))
	}
	ro.DialTimeout, ro.ReadTimeout, ro.WriteTimeout = o.Timeout, o.Timeout, o.Timeout
	ro.MaxRetries = 1 // every script is idempotent
	ro.DisableIdentity = true
	return &RedisStore{c: redis.NewClient(ro), o: o, autoNext: map[string]string{}, maintained: map[string]time.Time{}}, nil
}

func (r *RedisStore) key(k string) string { return r.o.Prefix + k }

func (r *RedisStore) rkey(route, k string) string { return r.o.Prefix + "r:" + route + ":" + k }

// unavailable wraps a Redis failure.
func unavailable(err error) error {
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrFull) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

func ms(t time.Time) int64 { return t.UnixMilli() }

// writeBound bounds one write of a message, its commands and their
// retry: the gate passes contexts without a deadline (a sender that goes
// away must not undo storing its message; the file store's writes are
// bounded by the disk).
const writeBound = 10 * time.Second

// Add stores m; it is due at m.Next.
func (r *RedisStore) Add(ctx context.Context, m *Message) error {
	if !validID(m.ID) {
		return fmt.Errorf("queue: invalid message id %q", m.ID)
	}
	// A sender that goes away does not cut a write short: it may have
	// been stored, and a failure here would speak for the store's health.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeBound)
	defer cancel()
	if err := r.ensureGroup(ctx, m.Route); err != nil {
		return unavailable(err)
	}
	payload, err := encodePayload(m)
	if err != nil {
		return err
	}
	progress, err := encodeProgress(m.Progress)
	if err != nil {
		return err
	}
	keys := []string{r.key("m"), r.key("p"), r.key("b"), r.key("rb"), r.rkey(m.Route, "s"), r.rkey(m.Route, "z"), r.rkey(m.Route, "a")}
	due := "0" // "1": due at arrival (a new message from Enqueue), straight into the stream
	if !m.Next.After(m.Received) {
		due = "1"
	}
	res, err := addScript.Run(ctx, r.c, keys, m.ID, payload, progress, m.Route, r.o.MaxBytes, ms(m.Next), ms(m.Received), due).Text()
	if err != nil {
		return unavailable(err)
	}
	if res == "full" {
		return ErrFull
	}
	return nil
}

func (r *RedisStore) ensureGroup(ctx context.Context, route string) error {
	if _, ok := r.groups.Load(route); ok {
		return nil
	}
	err := r.c.XGroupCreateMkStream(ctx, r.rkey(route, "s"), group, "0").Err()
	if err != nil && !isBusyGroup(err) {
		return err
	}
	r.groups.Store(route, struct{}{})
	return nil
}

// isBusyGroup: the group exists already. go-redis has no typed error for
// it; the server's reply starts with this code word.
func isBusyGroup(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "BUSYGROUP") }

func (r *RedisStore) removeKeys(route string) []string {
	return []string{r.key("m"), r.key("p"), r.key("b"), r.key("rb"), r.rkey(route, "s"), r.rkey(route, "a"), r.rkey(route, "z"), r.rkey(route, "d")}
}

// Ack removes a delivered message.
func (r *RedisStore) Ack(ctx context.Context, m *Message) error {
	ctx, cancel := context.WithTimeout(ctx, writeBound)
	defer cancel()
	n, err := removeScript.Run(ctx, r.c, r.removeKeys(m.Route), m.ID, m.lease, group, m.Route).Int()
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	return unavailable(err)
}

func (r *RedisStore) settle(ctx context.Context, m *Message, mode string, score int64) error {
	progress, err := encodeProgress(m.Progress)
	if err != nil {
		return err
	}
	keys := []string{r.key("m"), r.key("p"), r.rkey(m.Route, "s"), r.rkey(m.Route, "z"), r.rkey(m.Route, "d"), r.rkey(m.Route, "a")}
	ctx, cancel := context.WithTimeout(ctx, writeBound)
	defer cancel()
	n, err := settleScript.Run(ctx, r.c, keys, m.ID, m.lease, group, progress, mode, score).Int()
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	return unavailable(err)
}

// Retry stores m.Progress; the message is due at m.Next.
func (r *RedisStore) Retry(ctx context.Context, m *Message) error {
	m.State = Pending
	return r.settle(ctx, m, "retry", ms(m.Next))
}

// Bury makes the message a dead letter.
func (r *RedisStore) Bury(ctx context.Context, m *Message) error {
	m.State = Dead
	return r.settle(ctx, m, "bury", ms(time.Now()))
}

// Revive implements Store.
func (r *RedisStore) Revive(ctx context.Context, id string, p Progress) error {
	m, err := r.Get(ctx, id)
	if err != nil {
		return err
	}
	p.State = Pending
	progress, err := encodeProgress(p)
	if err != nil {
		return err
	}
	next, err := p.Next.MarshalText()
	if err != nil {
		return err
	}
	keys := []string{r.key("m"), r.key("p"), r.rkey(m.Route, "s"), r.rkey(m.Route, "z"), r.rkey(m.Route, "d"), r.rkey(m.Route, "a")}
	n, err := reviveScript.Run(ctx, r.c, keys, id, progress, string(next), ms(m.Received)).Int()
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	return unavailable(err)
}

// Drop removes a message, whatever its state.
func (r *RedisStore) Drop(ctx context.Context, id string) error {
	m, err := r.Get(ctx, id)
	if err != nil {
		return err
	}
	n, err := removeScript.Run(ctx, r.c, r.removeKeys(m.Route), id, "", group, m.Route).Int()
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	return unavailable(err)
}

// Close closes the connections.
func (r *RedisStore) Close() error { return r.c.Close() }

var _ Store = (*RedisStore)(nil)
