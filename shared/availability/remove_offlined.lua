-- Take mitras that Postgres has just set offline (the auto-offline sweep) out of the mirror:
-- online set, heartbeat and the available index, in one atomic step. The ids arrive as one
-- comma-separated string (a thousand separate arguments cost Valkey more to take in than the
-- removals themselves); the removals are variadic commands in batches (one SREM / ZREM per
-- structure per batch, not four calls per mitra).
-- KEYS: online, heartbeat, available, ring, seed_lock, seed_dirty
-- ARGV: ids csv
-- Returns how many of them were still in the online set.
local K_ONLINE, K_HB, K_AVAIL, K_RING, K_LOCK, K_DIRTY = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local all = {}
for id in string.gmatch(ARGV[1], '[^,]+') do
  all[#all + 1] = id
end
local removed = 0
local seeding = redis.call('EXISTS', K_LOCK) == 1
local BATCH = 500  -- well under Lua's unpack limit
for i = 1, #all, BATCH do
  local ids = {unpack(all, i, math.min(i + BATCH - 1, #all))}
  removed = removed + redis.call('SREM', K_ONLINE, unpack(ids))
  redis.call('ZREM', K_HB, unpack(ids))
  redis.call('ZREM', K_AVAIL, unpack(ids))
  redis.call('ZREM', K_RING, unpack(ids))
  if seeding then redis.call('SADD', K_DIRTY, unpack(ids)) end
end
return removed
