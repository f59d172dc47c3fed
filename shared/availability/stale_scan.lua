-- One page of the auto-offline sweep's read: whether a complete seed is in place, how many
-- mitras are online (the breaker's denominator) and up to `page` stale heartbeats, ids and
-- scores as two comma-separated strings (parsed by Postgres, not by the client). A page is
-- short, so no call blocks Valkey for long at a million online; the caller pages by score
-- as the heartbeat-mirror sweep does: the next page starts at the last score, skipping the
-- members of that score already read.
-- KEYS: seeded, online, heartbeat
-- ARGV: cutoff ms (inclusive), from score (inclusive, or '-inf'), members to skip at that
--       score, page size
-- Returns {seeded 0|1, online count, ids csv, ms csv, count, last score, members with the last
-- score in this page}.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {0, 0, '', '', 0, '', 0}
end
local rows = redis.call('ZRANGEBYSCORE', KEYS[3], ARGV[2], ARGV[1], 'WITHSCORES', 'LIMIT', ARGV[3], ARGV[4])
local ids, ms = {}, {}
for i = 1, #rows, 2 do
  ids[#ids + 1] = rows[i]
  ms[#ms + 1] = rows[i + 1]
end
local last, same = '', 0
if #ms > 0 then
  last = ms[#ms]
  for i = #ms, 1, -1 do
    if ms[i] ~= last then break end
    same = same + 1
  end
end
return {1, redis.call('SCARD', KEYS[2]), table.concat(ids, ','), table.concat(ms, ','), #ids, last, same}
