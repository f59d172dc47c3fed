-- Swap a fully built mirror in, atomically, then write `seeded` last. O(1) in the size of the
-- mirror: the temp keys were built, merged with the live pings and compared (drift) by short
-- scripts before this one, and the pings that arrived during the fill were applied page by
-- page (seed_catch_up.lua); here the last of them, at most about a page, are applied and
-- every key is renamed. The replaced live keys are renamed aside (their memory is freed by
-- the caller's UNLINK, in the background), because RENAME onto an existing key would free
-- the old value inside this script. For the same reason a seed that lost its lock UNLINKs
-- its temp keys: UNLINK takes a key out of the keyspace in O(1) and frees a large value in a
-- background thread (https://valkey.io/commands/unlink/), where DEL would free a million
-- members here unless lazyfree-lazy-user-del is set.
-- KEYS: 8 temp keys, the 8 live keys, 8 retired keys, in the order
--       online, deactivated, used, max, heartbeat, available, ring, config;
--       then snapshot, seeded, seed_dirty, seed_lock
-- ARGV: lock token, seeded marker value, ms: live pings above it are applied to the temp keys
-- Returns {'lost'} when the lock is no longer ours, else {'ok', had_seeded, dirty ids...}.
local N = 8
local K_SNAPSHOT, K_SEEDED, K_DIRTY, K_LOCK = KEYS[3 * N + 1], KEYS[3 * N + 2], KEYS[3 * N + 3], KEYS[3 * N + 4]
local T_HB, T_AVAIL, L_HB = KEYS[5], KEYS[6], KEYS[N + 5]

if redis.call('GET', K_LOCK) ~= ARGV[1] then
  for i = 1, N do redis.call('UNLINK', KEYS[i]) end
  return {'lost'}
end

local pings = redis.call('ZRANGEBYSCORE', L_HB, '(' .. ARGV[3], '+inf', 'WITHSCORES')
for i = 1, #pings, 2 do
  redis.call('ZADD', T_HB, 'XX', 'GT', pings[i + 1], pings[i])
  redis.call('ZADD', T_AVAIL, 'XX', 'GT', pings[i + 1], pings[i])
end

local had = redis.call('EXISTS', K_SEEDED)
for i = 1, N do
  if redis.call('EXISTS', KEYS[N + i]) == 1 then
    redis.call('RENAME', KEYS[N + i], KEYS[2 * N + i])
  end
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('RENAME', KEYS[i], KEYS[N + i])
  end
end
redis.call('DEL', K_SNAPSHOT)
local dirty = redis.call('SMEMBERS', K_DIRTY)
redis.call('UNLINK', K_DIRTY, K_LOCK)
redis.call('SET', K_SEEDED, ARGV[2])
local out = {'ok', had}
for _, id in ipairs(dirty) do out[#out + 1] = id end
return out
