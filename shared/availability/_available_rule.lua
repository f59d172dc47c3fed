-- The `available` rule, the one Lua copy (the Python and SQL copies: shared/availability/truth.py),
-- prepended at load time to every script that derives an entry or answers a maximum
-- (Valkey scripts cannot import). Expects the mutation key layout:
-- KEYS: online, deactivated, used, max, heartbeat, available, ring, config, seed_lock, seed_dirty
local K_ONLINE, K_DEACT, K_USED, K_MAX, K_HB, K_AVAIL, K_RING, K_CONFIG, K_LOCK, K_DIRTY =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]

-- The mitra's own maximum (0 included), else the default (1 when none is mirrored).
local function effective_max(id)
  local m = redis.call('HGET', K_MAX, id)
  if m then return tonumber(m) end
  return tonumber(redis.call('HGET', K_CONFIG, 'default_max') or '1')
end

-- available = online and not deactivated and used < max (heartbeat freshness is a read-time filter).
local function is_available(id)
  local used = tonumber(redis.call('HGET', K_USED, id) or '0')
  return redis.call('SISMEMBER', K_ONLINE, id) == 1 and redis.call('SISMEMBER', K_DEACT, id) == 0
    and used < effective_max(id)
end

-- Re-derive the mitra's `available` (scored by its last ping) and `ring` entries.
local function derive(id)
  if is_available(id) then
    redis.call('ZADD', K_AVAIL, redis.call('ZSCORE', K_HB, id) or 0, id)
    redis.call('ZADD', K_RING, 0, id)
  else
    redis.call('ZREM', K_AVAIL, id)
    redis.call('ZREM', K_RING, id)
  end
end
