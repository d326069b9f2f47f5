package queue

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Has reports whether a message is stored.
func (r *RedisStore) Has(ctx context.Context, id string) (bool, error) {
	n, err := r.c.HExists(ctx, r.key("m"), id).Result()
	if err != nil {
		return false, unavailable(err)
	}
	return n, nil
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
		m.Header, m.Body = nil, nil // a summary: one message's head and body at a time are held, never a listing's
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
