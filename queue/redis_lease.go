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
// whose holder's lease ran out. Under load a lease is one round trip: a
// script reads the new entries and their messages.
func (r *RedisStore) Lease(ctx context.Context, route string, now time.Time, n int) ([]*Message, error) {
	if n <= 0 {
		return nil, nil
	}
	if err := r.ensureGroup(ctx, route); err != nil {
		return nil, unavailable(err)
	}
	r.mu.Lock()
	last, due := r.maintained[route], false
	if due = now.Sub(last) >= maintainEvery || now.Before(last); due {
		r.maintained[route] = now
	}
	r.mu.Unlock()
	var claimed []redis.XMessage
	if due {
		c, err := r.maintain(ctx, route, now, n)
		if err != nil {
			return nil, err
		}
		claimed = c
	}
	fresh, err := r.readNew(ctx, route, n-len(claimed))
	if err != nil {
		return nil, err
	}
	if len(claimed)+len(fresh) < n && !due {
		c, err := r.maintain(ctx, route, now, n-len(claimed)-len(fresh))
		if err != nil {
			return nil, err
		}
		claimed = append(claimed, c...)
		more, err := r.readNew(ctx, route, n-len(claimed)-len(fresh))
		if err != nil {
			return nil, err
		}
		fresh = append(fresh, more...)
	}
	ids := make([]string, len(claimed))
	for i, e := range claimed {
		ids[i], _ = e.Values["id"].(string)
	}
	got, err := r.getMany(ctx, ids)
	if err != nil {
		return nil, err // nothing handed out: the entries are claimed again after the lease
	}
	for i, e := range claimed {
		fresh = append(fresh, entryRead{entry: e.ID, got: got[i]})
	}
	s := r.rkey(route, "s")
	out := make([]*Message, 0, len(fresh))
	for _, e := range fresh {
		m, err := e.m, e.err
		if errors.Is(err, ErrNotFound) || err == nil && m.State != Pending {
			// dropped (or buried) meanwhile: the entry is stale
			_ = r.c.XAck(ctx, s, group, e.entry).Err()
			_ = r.c.XDel(ctx, s, e.entry).Err()
			continue
		}
		if err != nil {
			return out, err // what was read is leased; the rest is claimed again after the lease
		}
		m.lease = e.entry
		out = append(out, m)
	}
	return out, nil
}

// entryRead is a stream entry and its message as read.
type entryRead struct {
	entry string
	got
}

// readNew reads up to n entries of route no consumer has had, with their
// messages, in one round trip.
func (r *RedisStore) readNew(ctx context.Context, route string, n int) ([]entryRead, error) {
	if n <= 0 {
		return nil, nil
	}
	keys := []string{r.rkey(route, "s"), r.key("m"), r.key("p")}
	res, err := readScript.Run(ctx, r.c, keys, group, r.o.Consumer, n).Slice()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, unavailable(err)
	}
	out := make([]entryRead, 0, len(res)/4)
	for i := 0; i+3 < len(res); i += 4 {
		e := entryRead{}
		e.entry, _ = res[i].(string)
		payload, _ := res[i+2].(string)
		progress, _ := res[i+3].(string)
		if payload == "" || progress == "" {
			e.err = ErrNotFound
		} else {
			e.m, e.err = decode([]byte(payload), []byte(progress))
		}
		out = append(out, e)
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
