-- Take mitras that Postgres has just set offline (the auto-offline sweep) out of the mirror:
-- online set, heartbeat and the available index, in one atomic step.
-- KEYS: online, heartbeat, available, ring, seed_lock, seed_dirty
-- ARGV: ids...
-- Returns how many of them were still in the online set.
local K_ONLINE, K_HB, K_AVAIL, K_RING, K_LOCK, K_DIRTY = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local removed = 0
local seeding = redis.call('EXISTS', K_LOCK) == 1
for _, id in ipairs(ARGV) do
  removed = removed + redis.call('SREM', K_ONLINE, id)
  redis.call('ZREM', K_HB, id)
  redis.call('ZREM', K_AVAIL, id)
  redis.call('ZREM', K_RING, id)
  if seeding then redis.call('SADD', K_DIRTY, id) end
end
return removed
