-- The `available` rule, shared by every script that re-derives a mitra's entry (prepended to
-- them at load time: Valkey scripts cannot import). Expects the mutation key layout:
-- KEYS: online, deactivated, used, max, heartbeat, available, ring, config, seed_lock, seed_dirty
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
