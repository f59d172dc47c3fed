-- The auto-offline sweep's read in one round trip: whether a complete seed is in place, how
-- many mitras are online (the breaker's denominator) and the stale heartbeats, ids and scores
-- as two comma-separated strings (parsed by Postgres, not by the client).
-- KEYS: seeded, online, heartbeat
-- ARGV: cutoff ms (inclusive), most ids to return
-- Returns {seeded 0|1, online count, ids csv, ms csv, count}.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {0, 0, '', '', 0}
end
local rows = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[2])
local ids, ms = {}, {}
for i = 1, #rows, 2 do
  ids[#ids + 1] = rows[i]
  ms[#ms + 1] = rows[i + 1]
end
return {1, redis.call('SCARD', KEYS[2]), table.concat(ids, ','), table.concat(ms, ','), #ids}
