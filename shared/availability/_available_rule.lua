-- The `available` rule, the one Lua copy (the Python and SQL copies: shared/availability/truth.py),
-- prepended at load time to every script that derives an entry or answers a maximum
-- (Valkey scripts cannot import). Expects the mutation key layout:
-- KEYS: online, deactivated, used, max, heartbeat, available, ring, config, seed_lock, seed_dirty
local K_ONLINE, K_DEACT, K_USED, K_MAX, K_HB, K_AVAIL, K_RING, K_CONFIG, K_LOCK, K_DIRTY =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]

-- A maximum from the mitra's override (0 included; false: none) and the default (1 when none is mirrored).
local function max_from(override, default)
  if override then return tonumber(override) end
  return tonumber(default or '1')
end

-- The mitra's own maximum, else the default.
local function effective_max(id)
  local override = redis.call('HGET', K_MAX, id)
  return max_from(override, not override and redis.call('HGET', K_CONFIG, 'default_max'))
end

-- available = online and not deactivated and used < max (heartbeat freshness is a read-time filter).
local function available(online, deactivated, used, max)
  return online and not deactivated and used < max
end

local function is_available(id)
  return available(redis.call('SISMEMBER', K_ONLINE, id) == 1, redis.call('SISMEMBER', K_DEACT, id) == 1,
    tonumber(redis.call('HGET', K_USED, id) or '0'), effective_max(id))
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

-- derive() for many mitras at once, each structure read and written by one variadic command per
-- 500 mitras (well under Lua's unpack limit) instead of several commands per mitra.
local function derive_many(ids)
  for first = 1, #ids, 500 do
    local last = math.min(first + 499, #ids)
    local online = redis.call('SMISMEMBER', K_ONLINE, unpack(ids, first, last))
    local deactivated = redis.call('SMISMEMBER', K_DEACT, unpack(ids, first, last))
    local used = redis.call('HMGET', K_USED, unpack(ids, first, last))
    local overrides = redis.call('HMGET', K_MAX, unpack(ids, first, last))
    local pings = redis.call('ZMSCORE', K_HB, unpack(ids, first, last))
    local default = redis.call('HGET', K_CONFIG, 'default_max')
    local avail, ring, gone, n = {}, {}, {}, 0
    for i = 1, last - first + 1 do
      local id = ids[first + i - 1]
      if available(online[i] == 1, deactivated[i] == 1, tonumber(used[i] or '0'), max_from(overrides[i], default)) then
        avail[n + 1], ring[n + 1] = pings[i] or 0, 0
        avail[n + 2], ring[n + 2] = id, id
        n = n + 2
      else
        gone[#gone + 1] = id
      end
    end
    if n > 0 then
      redis.call('ZADD', K_AVAIL, unpack(avail))
      redis.call('ZADD', K_RING, unpack(ring))
    end
    if #gone > 0 then
      redis.call('ZREM', K_AVAIL, unpack(gone))
      redis.call('ZREM', K_RING, unpack(gone))
    end
  end
end
