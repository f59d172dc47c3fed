-- The beacon: the shared 10 s snapshot of the number of fresh available mitras. The first
-- caller after expiry recomputes it (ZCOUNT, O(log n)); every instance reads the same value.
-- KEYS: seeded, snapshot, available
-- ARGV: cutoff ms, now ms, snapshot ttl ms
-- Returns the snapshot JSON {"available": n, "as_of_ms": ms}, or nil when not seeded.
local K_SEEDED, K_SNAPSHOT, K_AVAIL = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', K_SEEDED) == 0 then return false end
local snapshot = redis.call('GET', K_SNAPSHOT)
if snapshot then return snapshot end
local n = redis.call('ZCOUNT', K_AVAIL, '(' .. ARGV[1], '+inf')
snapshot = '{"available":' .. n .. ',"as_of_ms":' .. ARGV[2] .. '}'
redis.call('SET', K_SNAPSHOT, snapshot, 'PX', ARGV[3])
return snapshot
