package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
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

// Add stores m; it is due at m.Next.
func (r *RedisStore) Add(ctx context.Context, m *Message) error {
	if !validID(m.ID) {
		return fmt.Errorf("queue: invalid message id %q", m.ID)
	}
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
	res, err := addScript.Run(ctx, r.c, keys, m.ID, payload, progress, m.Route, r.o.MaxBytes, ms(m.Next), ms(m.Received)).Text()
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

// maintainEvery is how often a route that has new messages enough
// still moves its due retries into the stream and claims the messages
// of replicas whose lease ran out (a route short of new messages does
// both at every lease).
const maintainEvery = time.Second

// Lease hands out due messages: new ones, and (every maintainEvery, or
// when there are not n new ones) retries that came due and messages
// whose holder's lease ran out. Under load a lease is one round trip
// for the stream and one for the messages.
func (r *RedisStore) Lease(ctx context.Context, route string, now time.Time, n int) ([]*Message, error) {
	if n <= 0 {
		return nil, nil
	}
	if err := r.ensureGroup(ctx, route); err != nil {
		return nil, unavailable(err)
	}
	s := r.rkey(route, "s")
	r.mu.Lock()
	last, due := r.maintained[route], false
	if due = now.Sub(last) >= maintainEvery || now.Before(last); due {
		r.maintained[route] = now
	}
	r.mu.Unlock()
	var entries []redis.XMessage
	if due {
		claimed, err := r.maintain(ctx, route, now, n)
		if err != nil {
			return nil, err
		}
		entries = claimed
	}
	fresh, err := r.readNew(ctx, s, n-len(entries))
	if err != nil {
		return nil, err
	}
	entries = append(entries, fresh...)
	if len(entries) < n && !due {
		claimed, err := r.maintain(ctx, route, now, n-len(entries))
		if err != nil {
			return nil, err
		}
		entries = append(entries, claimed...)
		if fresh, err = r.readNew(ctx, s, n-len(entries)); err != nil {
			return nil, err
		}
		entries = append(entries, fresh...)
	}
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i], _ = e.Values["id"].(string)
	}
	got, err := r.getMany(ctx, ids)
	if err != nil {
		return nil, err // nothing handed out: the entries are claimed again after the lease
	}
	out := make([]*Message, 0, len(entries))
	for i, e := range entries {
		m, err := got[i].m, got[i].err
		if errors.Is(err, ErrNotFound) || err == nil && m.State != Pending {
			// dropped (or buried) meanwhile: the entry is stale
			_ = r.c.XAck(ctx, s, group, e.ID).Err()
			_ = r.c.XDel(ctx, s, e.ID).Err()
			continue
		}
		if err != nil {
			return out, err // what was read is leased; the rest is claimed again after the lease
		}
		m.lease = e.ID
		out = append(out, m)
	}
	return out, nil
}

// maintain moves route's due retries into its stream and claims up to n
// entries whose holder's lease ran out.
func (r *RedisStore) maintain(ctx context.Context, route string, now time.Time, n int) ([]redis.XMessage, error) {
	s := r.rkey(route, "s")
	if err := promoteScript.Run(ctx, r.c, []string{r.rkey(route, "z"), s}, ms(now), 100).Err(); err != nil {
		return nil, unavailable(err)
	}
	if n <= 0 {
		return nil, nil
	}
	r.mu.Lock()
	start := r.autoNext[route]
	r.mu.Unlock()
	if start == "" {
		start = "0-0"
	}
	entries, next, err := r.c.XAutoClaim(ctx, &redis.XAutoClaimArgs{Stream: s, Group: group, Consumer: r.o.Consumer, MinIdle: r.o.Lease, Start: start, Count: int64(n)}).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, unavailable(err)
	}
	r.mu.Lock()
	r.autoNext[route] = next
	r.mu.Unlock()
	return entries, nil
}

// readNew reads up to n entries no consumer has had.
func (r *RedisStore) readNew(ctx context.Context, s string, n int) ([]redis.XMessage, error) {
	if n <= 0 {
		return nil, nil
	}
	streams, err := r.c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: r.o.Consumer, Streams: []string{s, ">"}, Count: int64(n), Block: -1}).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, unavailable(err)
	}
	var out []redis.XMessage
	for _, st := range streams {
		out = append(out, st.Messages...)
	}
	return out, nil
}

func (r *RedisStore) removeKeys(route string) []string {
	return []string{r.key("m"), r.key("p"), r.key("b"), r.key("rb"), r.rkey(route, "s"), r.rkey(route, "a"), r.rkey(route, "z"), r.rkey(route, "d")}
}

// Ack removes a delivered message.
func (r *RedisStore) Ack(ctx context.Context, m *Message) error {
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

// Get returns one message.
func (r *RedisStore) Get(ctx context.Context, id string) (*Message, error) {
	got, err := r.getMany(ctx, []string{id})
	if err != nil {
		return nil, err
	}
	return got[0].m, got[0].err
}

// got is one message read by getMany, or why not (ErrNotFound, a
// corrupt payload).
type got struct {
	m   *Message
	err error
}

// getMany reads messages in one round trip; the error is the
// connection's, each message's own is in its got.
func (r *RedisStore) getMany(ctx context.Context, ids []string) ([]got, error) {
	out := make([]got, len(ids))
	payloads := make([]*redis.StringCmd, len(ids))
	progress := make([]*redis.StringCmd, len(ids))
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			if validID(id) {
				payloads[i] = p.HGet(ctx, r.key("m"), id)
				progress[i] = p.HGet(ctx, r.key("p"), id)
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, unavailable(err)
	}
	for i := range ids {
		if payloads[i] == nil {
			out[i].err = ErrNotFound
			continue
		}
		pl, perr := payloads[i].Result()
		pr, prerr := progress[i].Result()
		switch {
		case errors.Is(perr, redis.Nil) || errors.Is(prerr, redis.Nil) || pl == "":
			out[i].err = ErrNotFound
		case perr != nil || prerr != nil:
			return nil, unavailable(errors.Join(perr, prerr))
		default:
			out[i].m, out[i].err = decode([]byte(pl), []byte(pr))
		}
	}
	return out, nil
}

// List returns up to limit messages of route in state, oldest first
// (dead letters by when they died).
func (r *RedisStore) List(ctx context.Context, route string, state State, limit int) ([]*Message, error) {
	k := r.rkey(route, "a")
	if state == Dead {
		k = r.rkey(route, "d")
	}
	stop := int64(-1)
	if limit > 0 {
		stop = int64(limit - 1)
	}
	ids, err := r.c.ZRange(ctx, k, 0, stop).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	out := make([]*Message, 0, len(ids))
	for _, id := range ids {
		m, err := r.Get(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// Stats counts the stored messages per route.
func (r *RedisStore) Stats(ctx context.Context) ([]RouteStats, error) {
	bytes, err := r.c.HGetAll(ctx, r.key("rb")).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	var out []RouteStats
	for route, b := range bytes {
		rs := RouteStats{Route: route}
		rs.Bytes, _ = strconv.ParseInt(b, 10, 64)
		pipe := r.c.Pipeline()
		pending := pipe.ZCard(ctx, r.rkey(route, "a"))
		dead := pipe.ZCard(ctx, r.rkey(route, "d"))
		oldest := pipe.ZRangeWithScores(ctx, r.rkey(route, "a"), 0, 0)
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, unavailable(err)
		}
		rs.Pending, rs.Dead = pending.Val(), dead.Val()
		if z := oldest.Val(); len(z) > 0 {
			rs.Oldest = time.UnixMilli(int64(z[0].Score))
		}
		if rs.Pending+rs.Dead > 0 {
			out = append(out, rs)
		}
	}
	sortStats(out)
	return out, nil
}

// Close closes the connections.
func (r *RedisStore) Close() error { return r.c.Close() }

var _ Store = (*RedisStore)(nil)
