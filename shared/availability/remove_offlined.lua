-- Take mitras that Postgres has just set offline (the auto-offline sweep) out of the mirror:
-- online set, heartbeat and the available index, in one atomic step. Variadic commands in
-- batches (one SREM / ZREM per structure per batch, not four calls per mitra).
-- KEYS: online, heartbeat, available, ring, seed_lock, seed_dirty
-- ARGV: ids...
-- Returns how many of them were still in the online set.
local K_ONLINE, K_HB, K_AVAIL, K_RING, K_LOCK, K_DIRTY = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local removed = 0
local seeding = redis.call('EXISTS', K_LOCK) == 1
local BATCH = 500  -- well under Lua's unpack limit
for i = 1, #ARGV, BATCH do
  local ids = {unpack(ARGV, i, math.min(i + BATCH - 1, #ARGV))}
  removed = removed + redis.call('SREM', K_ONLINE, unpack(ids))
  redis.call('ZREM', K_HB, unpack(ids))
  redis.call('ZREM', K_AVAIL, unpack(ids))
  redis.call('ZREM', K_RING, unpack(ids))
  if seeding then redis.call('SADD', K_DIRTY, unpack(ids)) end
end
return removed
