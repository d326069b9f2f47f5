package egress

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The shared refresh token of an authorization-code entry is a Redis
// hash: g (its generation: a rotation stores g+1; a new consent, and a
// seed, take Redis's clock in microseconds if that is more, so that they
// are newer than every generation of an earlier consent, even one a
// replica saw before Redis went back), st (ready,
// spending while a replica's refresh may be at the vendor, refused after
// invalid_grant), by and at (the spender and since when, by Redis's
// clock) and ct (the token sealed with the key name and g as additional
// data). A refresh marks the record spending before it sends the token
// and stores the rotated one as g+1; a replica that finds it spending
// by another does not send the token (it may be spent) until the
// spender stores its successor, or the mark is stale.

// Refresh record states.
const (
	stateReady    = "ready"
	stateSpending = "spending"
	stateRefused  = "refused"
)

// refreshRecord is the shared refresh token as read.
type refreshRecord struct {
	gen     uint64
	state   string
	spender string
	age     time.Duration // since the spending mark, by Redis's clock
	rt      string
	hw      uint64 // the highest generation a replica that found the record stale saw, 0 if none
}

var (
	// loadRefreshScript: the record's fields and the server's time.
	loadRefreshScript = redis.NewScript(`
local r = redis.call('HMGET', KEYS[1], 'g', 'st', 'by', 'at', 'ct', 'hw')
local t = redis.call('TIME')
return {r[1] or '', r[2] or '', r[3] or '', r[4] or '', r[5] or '', t[1], t[2], r[6] or ''}`)
	// seedRefreshScript: under the lock, create the record (generation
	// ARGV[3]) unless there is one → 1, 0; -1 without the lock.
	seedRefreshScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[2], 'g', ARGV[3], 'st', 'ready', 'ct', ARGV[2])
return 1`)
	// restoreRefreshScript: under the lock, replace a stale record
	// (generation ARGV[2]) with the newest token a replica holds, as
	// generation ARGV[3] → 1; 0 if the record moved; -1 without the
	// lock.
	restoreRefreshScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if (redis.call('HGET', KEYS[2], 'g') or '') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[2], 'g', ARGV[3], 'st', 'ready', 'ct', ARGV[4])
redis.call('HDEL', KEYS[2], 'by', 'at', 'hw')
return 1`)
	// markStaleScript: under the lock, note on the stale record of
	// generation ARGV[2] that a replica saw generation ARGV[3] (hw, the
	// highest reported): a replica that believes it rotated last but saw
	// less does not restore its token, which may be spent.
	markStaleScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if (redis.call('HGET', KEYS[2], 'g') or '') ~= ARGV[2] then return 0 end
local hw = tonumber(redis.call('HGET', KEYS[2], 'hw') or '0')
if tonumber(ARGV[3]) > hw then redis.call('HSET', KEYS[2], 'hw', ARGV[3]) end
return 1`)
	// markSpendingScript: under the lock, mark generation ARGV[2] as
	// being spent by ARGV[3] → 1; 0 if the generation moved; -1 without
	// the lock.
	markSpendingScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if redis.call('HGET', KEYS[2], 'g') ~= ARGV[2] then return 0 end
local t = redis.call('TIME')
redis.call('HSET', KEYS[2], 'st', 'spending', 'by', ARGV[3], 'at', tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)))
return 1`)
	// commitScript: the successor of generation ARGV[1] (ARGV[2], sealed
	// ARGV[3]) → 1 while the record is still at ARGV[1] (or already holds
	// it), 2 if the record was gone (recreated), 0 if another generation
	// is there (a new consent). Not conditional on the lock: a rotated
	// token is written even after the lock expired.
	commitScript = redis.NewScript(`
local g = redis.call('HGET', KEYS[1], 'g')
if not g then
  redis.call('HSET', KEYS[1], 'g', ARGV[2], 'st', 'ready', 'ct', ARGV[3])
  return 2
end
if g == ARGV[2] and redis.call('HGET', KEYS[1], 'ct') == ARGV[3] then return 1 end
if g ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'g', ARGV[2], 'st', 'ready', 'ct', ARGV[3])
redis.call('HDEL', KEYS[1], 'by', 'at')
return 1`)
	// settleScript: the spender ends its mark on generation ARGV[1] with
	// state ARGV[3] (ready: nothing rotated; refused: invalid_grant).
	settleScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'g') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'by') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'st', ARGV[3])
redis.call('HDEL', KEYS[1], 'by', 'at')
return 1`)
	// replaceRefreshScript: a new consent (authorize), under the lock:
	// generation ARGV[3] replaces ARGV[2] and the old consent's access
	// token goes → 1; 0 if the generation moved meanwhile; -1 without
	// the lock.
	replaceRefreshScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local g = redis.call('HGET', KEYS[2], 'g') or '0'
if g == ARGV[3] and redis.call('HGET', KEYS[2], 'ct') == ARGV[4] then return 1 end
if g ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[2], 'g', ARGV[3], 'st', 'ready', 'ct', ARGV[4])
redis.call('HDEL', KEYS[2], 'by', 'at', 'hw')
redis.call('DEL', KEYS[3])
return 1`)
)

// errLockLost: the lock expired before the step that needed it.
var errLockLost = errors.New("the shared lock expired before the refresh began: nothing was sent")

func (s *SharedStore) refreshAD(gen uint64) string {
	return s.refreshKey() + "\x00" + strconv.FormatUint(gen, 10)
}

// loadRefresh reads the shared refresh token; nil if there is none. A
// token that does not decrypt is an error: it may be the only copy of
// the current one, so it is never overwritten.
func (s *SharedStore) loadRefresh(ctx context.Context) (*refreshRecord, error) {
	vs, err := loadRefreshScript.Run(ctx, s.c, []string{s.refreshKey()}).StringSlice()
	if err != nil {
		return nil, err
	}
	if len(vs) != 8 || vs[0] == "" {
		return nil, nil
	}
	gen, err := strconv.ParseUint(vs[0], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("the shared refresh token's generation %q is not a number", vs[0])
	}
	rec := &refreshRecord{gen: gen, state: vs[1], spender: vs[2]}
	rec.hw, _ = strconv.ParseUint(vs[7], 10, 64)
	if at, err := strconv.ParseInt(vs[3], 10, 64); err == nil {
		sec, _ := strconv.ParseInt(vs[5], 10, 64)
		usec, _ := strconv.ParseInt(vs[6], 10, 64)
		rec.age = time.UnixMicro(sec*1e6 + usec).Sub(time.UnixMilli(at))
	}
	plain, err := s.open(s.refreshAD(gen), vs[4])
	if err != nil {
		return nil, fmt.Errorf("the shared refresh token: %w", err)
	}
	rec.rt = string(plain)
	return rec, nil
}

// nextGeneration is the generation that follows after for a new
// consent or a seed: Redis's clock in microseconds, or after+1 if that
// is more.
func (s *SharedStore) nextGeneration(ctx context.Context, after uint64) (uint64, error) {
	now, err := s.c.Time(ctx).Result()
	if err != nil {
		return 0, err
	}
	return max(after+1, uint64(max(now.UnixMicro(), 0))), nil
}

// seedRefresh stores rt as the first generation if there is no record
// yet, and returns the record then there.
func (s *SharedStore) seedRefresh(ctx context.Context, l *sharedLock, rt string) (*refreshRecord, error) {
	gen, err := s.nextGeneration(ctx, 0)
	if err != nil {
		return nil, err
	}
	n, err := seedRefreshScript.Run(ctx, s.c, []string{s.lockKey(), s.refreshKey()}, l.owner, s.seal(s.refreshAD(gen), []byte(rt)), gen).Int()
	switch {
	case err != nil:
		return nil, err
	case n < 0:
		return nil, errLockLost
	}
	return s.loadRefresh(ctx)
}

// markSpending marks rec's generation as being spent by spender.
func (s *SharedStore) markSpending(ctx context.Context, l *sharedLock, gen uint64, spender string) error {
	n, err := markSpendingScript.Run(ctx, s.c, []string{s.lockKey(), s.refreshKey()}, l.owner, gen, spender).Int()
	switch {
	case err != nil:
		return err
	case n < 0:
		return errLockLost
	case n == 0:
		return errors.New("the shared refresh token changed while the lock was held (a new consent): nothing was sent")
	}
	return nil
}

// commitRefresh stores rt as the successor of generation gen. It reports
// false when a newer generation is there already (a new consent: rt
// belongs to the old one).
func (s *SharedStore) commitRefresh(ctx context.Context, gen uint64, rt string) (bool, error) {
	n, err := commitScript.Run(ctx, s.c, []string{s.refreshKey()}, gen, gen+1, s.seal(s.refreshAD(gen+1), []byte(rt))).Int()
	return n > 0, err
}

// settle ends spender's mark on generation gen with state.
func (s *SharedStore) settle(gen uint64, spender, state string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opTimeout)
	defer cancel()
	_ = settleScript.Run(ctx, s.c, []string{s.refreshKey()}, gen, spender, state).Err()
}

// replaceRefresh stores a new consent's refresh token as the next
// generation (nextGeneration) and deletes the old consent's access
// token; l is held. It returns the generation stored.
func (s *SharedStore) replaceRefresh(ctx context.Context, l *sharedLock, rt string) (uint64, error) {
	for {
		g, err := s.c.HGet(ctx, s.refreshKey(), "g").Uint64()
		if errors.Is(err, redis.Nil) {
			g, err = 0, nil
		}
		if err != nil {
			return 0, err
		}
		next, err := s.nextGeneration(ctx, g)
		if err != nil {
			return 0, err
		}
		n, err := replaceRefreshScript.Run(ctx, s.c, []string{s.lockKey(), s.refreshKey(), s.tokenKey()},
			l.owner, g, next, s.seal(s.refreshAD(next), []byte(rt))).Int()
		switch {
		case err != nil:
			return 0, err
		case n < 0:
			return 0, errLockLost
		case n > 0:
			return next, nil
		}
	}
}

// restoreRefresh replaces the stale record of generation stale with rt,
// the newest token this replica holds, as generation gen; l is held.
func (s *SharedStore) restoreRefresh(ctx context.Context, l *sharedLock, stale, gen uint64, rt string) error {
	n, err := restoreRefreshScript.Run(ctx, s.c, []string{s.lockKey(), s.refreshKey()}, l.owner, stale, gen, s.seal(s.refreshAD(gen), []byte(rt))).Int()
	switch {
	case err != nil:
		return err
	case n < 0:
		return errLockLost
	case n == 0:
		return errors.New("the shared refresh token changed while the lock was held: nothing was sent")
	}
	return nil
}

// refreshGeneration is the shared refresh token's generation, 0 when
// there is none (one HGET: cheap enough to ask while failing).
func (s *SharedStore) refreshGeneration(ctx context.Context) (uint64, error) {
	g, err := s.c.HGet(ctx, s.refreshKey(), "g").Uint64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return g, err
}

// markStale reports on the stale record of generation stale that this
// replica saw generation seen; l is held.
func (s *SharedStore) markStale(ctx context.Context, l *sharedLock, stale, seen uint64) error {
	return markStaleScript.Run(ctx, s.c, []string{s.lockKey(), s.refreshKey()}, l.owner, stale, seen).Err()
}
