-- Write one mitra's Postgres truth into the mirror and re-derive its `available` entry.
-- KEYS: online, deactivated, used, max, heartbeat, available, ring, config, seed_lock, seed_dirty
-- ARGV: id, online (0|1), active (0|1), used, max override ('' = none),
--       heartbeat ms to set ('' = keep), heartbeat ms to use when keeping but absent
-- Returns {online (0|1), used, effective max, heartbeat ms or ''}.
local K_ONLINE, K_DEACT, K_USED, K_MAX, K_HB, K_AVAIL, K_RING, K_CONFIG, K_LOCK, K_DIRTY =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]

local function effective_max(id)
  local m = redis.call('HGET', K_MAX, id)
  if m then return tonumber(m) end
  return tonumber(redis.call('HGET', K_CONFIG, 'default_max') or '1')
end

-- available = online and not deactivated and used < max, scored by the last ping.
local function derive(id)
  local used = tonumber(redis.call('HGET', K_USED, id) or '0')
  if redis.call('SISMEMBER', K_ONLINE, id) == 1 and redis.call('SISMEMBER', K_DEACT, id) == 0
      and used < effective_max(id) then
    redis.call('ZADD', K_AVAIL, redis.call('ZSCORE', K_HB, id) or 0, id)
    redis.call('ZADD', K_RING, 0, id)
  else
    redis.call('ZREM', K_AVAIL, id)
    redis.call('ZREM', K_RING, id)
  end
end

local id = ARGV[1]
if ARGV[2] == '1' then
  redis.call('SADD', K_ONLINE, id)
  if ARGV[6] ~= '' then
    redis.call('ZADD', K_HB, 'GT', ARGV[6], id)  -- GT adds a new member, never moves one back
  else
    redis.call('ZADD', K_HB, 'NX', ARGV[7], id)
  end
else
  redis.call('SREM', K_ONLINE, id)
  redis.call('ZREM', K_HB, id)
end
if ARGV[3] == '1' then
  redis.call('SREM', K_DEACT, id)
else
  redis.call('SADD', K_DEACT, id)
end
if tonumber(ARGV[4]) > 0 then
  redis.call('HSET', K_USED, id, ARGV[4])
else
  redis.call('HDEL', K_USED, id)
end
if ARGV[5] ~= '' then
  redis.call('HSET', K_MAX, id, ARGV[5])
else
  redis.call('HDEL', K_MAX, id)
end
derive(id)
if redis.call('EXISTS', K_LOCK) == 1 then
  redis.call('SADD', K_DIRTY, id)
end
return {ARGV[2] == '1' and 1 or 0, tonumber(ARGV[4]), effective_max(id), redis.call('ZSCORE', K_HB, id) or ''}
