-- Swap a freshly built mirror in, atomically, then write `seeded` last.
-- Heartbeats are merged (max of the Postgres value and the live one), because pings reach
-- Postgres only through the heartbeat-mirror sweep and must not move back. Returns the
-- drift healed and the mitras written while the seed ran (the caller re-syncs them).
-- KEYS: 8 temp keys, then the 8 live keys, in the order
--       online, deactivated, used, max, heartbeat, available, ring, config;
--       then union scratch, snapshot, seeded, seed_dirty, seed_lock
-- ARGV: lock token, seeded marker value
-- Returns {'lost'} when the lock is no longer ours, else
--   {'ok', had_seeded, d_online, d_deactivated, d_used, d_max, d_available, dirty ids...}.
local N = 8
local K_UNION, K_SNAPSHOT, K_SEEDED, K_DIRTY, K_LOCK = KEYS[17], KEYS[18], KEYS[19], KEYS[20], KEYS[21]
local T_HB, T_AVAIL, L_HB = KEYS[5], KEYS[6], KEYS[N + 5]

if redis.call('GET', K_LOCK) ~= ARGV[1] then
  for i = 1, N do redis.call('DEL', KEYS[i]) end
  return {'lost'}
end

if redis.call('EXISTS', L_HB) == 1 and redis.call('EXISTS', T_HB) == 1 then
  redis.call('ZUNIONSTORE', K_UNION, 2, T_HB, L_HB, 'AGGREGATE', 'MAX')
  redis.call('ZINTERSTORE', T_HB, 2, T_HB, K_UNION, 'WEIGHTS', 0, 1)
  redis.call('DEL', K_UNION)
  if redis.call('EXISTS', T_AVAIL) == 1 then
    redis.call('ZINTERSTORE', T_AVAIL, 2, T_AVAIL, T_HB, 'WEIGHTS', 0, 1)
  end
end

local function set_drift(a, b)
  return redis.call('SCARD', a) + redis.call('SCARD', b) - 2 * redis.call('SINTERCARD', 2, a, b)
end
local function zset_drift(a, b)
  return redis.call('ZCARD', a) + redis.call('ZCARD', b) - 2 * redis.call('ZINTERCARD', 2, a, b)
end
local function hash_drift(a, b)
  local fresh, live, n = {}, redis.call('HGETALL', b), 0
  local flat = redis.call('HGETALL', a)
  for i = 1, #flat, 2 do fresh[flat[i]] = flat[i + 1] end
  for i = 1, #live, 2 do
    if fresh[live[i]] ~= live[i + 1] then n = n + 1 end
    fresh[live[i]] = nil
  end
  for _ in pairs(fresh) do n = n + 1 end
  return n
end

local had = redis.call('EXISTS', K_SEEDED)
local drift = {0, 0, 0, 0, 0}
if had == 1 then
  drift = {
    set_drift(KEYS[1], KEYS[N + 1]), set_drift(KEYS[2], KEYS[N + 2]),
    hash_drift(KEYS[3], KEYS[N + 3]), hash_drift(KEYS[4], KEYS[N + 4]),
    zset_drift(KEYS[6], KEYS[N + 6]),
  }
end

for i = 1, N do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('RENAME', KEYS[i], KEYS[N + i])
  else
    redis.call('DEL', KEYS[N + i])
  end
end
redis.call('DEL', K_SNAPSHOT)
local dirty = redis.call('SMEMBERS', K_DIRTY)
redis.call('DEL', K_DIRTY, K_LOCK)
redis.call('SET', K_SEEDED, ARGV[2])
local out = {'ok', had, drift[1], drift[2], drift[3], drift[4], drift[5]}
for _, id in ipairs(dirty) do out[#out + 1] = id end
return out
