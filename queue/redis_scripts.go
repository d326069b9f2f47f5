package queue

import "github.com/redis/go-redis/v9"

// Keys: m (hash id → payload), p (hash id → progress), b (total payload
// bytes), rb (hash route → payload bytes); per route "r:<route>:" then
// s (stream of due ids), z (zset: delayed id → due ms), d (zset: dead id
// → ms buried), a (zset: pending id → arrival ms). The per-route suffixes
// have one length, so no two routes' keys can coincide.
var (
	// addScript stores a new message, unless the bytes would pass the
	// bound: due at once (ARGV[8] = 1) into the stream, which the next
	// Lease reads; else delayed until due (a Lease moves it to the
	// stream). A retried command finds its message and reports ok.
	addScript = redis.NewScript(`
local size = string.len(ARGV[2])
local max = tonumber(ARGV[5])
local used = tonumber(redis.call('GET', KEYS[3]) or '0')
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 'ok' end
if max > 0 and used + size > max then return 'full' end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('INCRBY', KEYS[3], size)
redis.call('HINCRBY', KEYS[4], ARGV[4], size)
redis.call('ZADD', KEYS[7], ARGV[7], ARGV[1])
if ARGV[8] == '1' then
  redis.call('XADD', KEYS[5], '*', 'id', ARGV[1])
else
  redis.call('ZADD', KEYS[6], ARGV[6], ARGV[1])
end
return 'ok'`)
	// readScript reads up to ARGV[3] entries no consumer has had
	// (XREADGROUP ARGV[1] ARGV[2]) and, in the same round trip, each
	// entry's message: a flat list of entry id, message id, payload and
	// progress (false when the message is gone).
	readScript = redis.NewScript(`
local res = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3], 'STREAMS', KEYS[1], '>')
local out = {}
if not res then return out end
for _, e in ipairs(res[1][2]) do
  local id = ''
  local f = e[2]
  for i = 1, #f, 2 do
    if f[i] == 'id' then id = f[i+1] end
  end
  out[#out+1] = e[1]
  out[#out+1] = id
  out[#out+1] = redis.call('HGET', KEYS[2], id)
  out[#out+1] = redis.call('HGET', KEYS[3], id)
end
return out`)
	// promoteScript moves due delayed ids into the stream.
	promoteScript = redis.NewScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('XADD', KEYS[2], '*', 'id', id)
end
return #ids`)
	// removeScript deletes a message (delivered or dropped) and its
	// stream entry, if leased.
	removeScript = redis.NewScript(`
if ARGV[2] ~= '' then
  redis.call('XACK', KEYS[5], ARGV[3], ARGV[2])
  redis.call('XDEL', KEYS[5], ARGV[2])
end
local size = redis.call('HSTRLEN', KEYS[1], ARGV[1])
if size == 0 then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('DECRBY', KEYS[3], size)
redis.call('HINCRBY', KEYS[4], ARGV[4], -size)
redis.call('ZREM', KEYS[6], ARGV[1])
redis.call('ZREM', KEYS[7], ARGV[1])
redis.call('ZREM', KEYS[8], ARGV[1])
return 1`)
	// settleScript ends a lease: back to the delayed set (retry) or to
	// the dead letters (bury), with the new progress.
	settleScript = redis.NewScript(`
if ARGV[2] ~= '' then
  redis.call('XACK', KEYS[3], ARGV[3], ARGV[2])
  redis.call('XDEL', KEYS[3], ARGV[2])
end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
if ARGV[5] == 'retry' then
  redis.call('ZADD', KEYS[4], ARGV[6], ARGV[1])
else
  redis.call('ZADD', KEYS[5], ARGV[6], ARGV[1])
  redis.call('ZREM', KEYS[6], ARGV[1])
end
return 1`)
	// reviveScript: a dead letter gets the new progress and is due now;
	// a delayed message is due now; anything else is left alone.
	reviveScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('ZSCORE', KEYS[5], ARGV[1]) then
  redis.call('ZREM', KEYS[5], ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  redis.call('ZADD', KEYS[6], ARGV[4], ARGV[1])
  redis.call('XADD', KEYS[3], '*', 'id', ARGV[1])
elseif redis.call('ZSCORE', KEYS[4], ARGV[1]) then
  redis.call('ZREM', KEYS[4], ARGV[1])
  local p = cjson.decode(redis.call('HGET', KEYS[2], ARGV[1]))
  p['next'] = ARGV[3]
  redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(p))
  redis.call('XADD', KEYS[3], '*', 'id', ARGV[1])
end
return 1`)
)
