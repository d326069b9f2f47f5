package queue

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

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
