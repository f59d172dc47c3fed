-- One page of the auto-offline sweep's read: whether a complete seed is in place, how many
-- mitras are online (the breaker's denominator) and up to `page` stale heartbeats, ids and
-- scores as two comma-separated strings (parsed by Postgres, not by the client). A page is
-- short, so no call blocks Valkey for long at a million online; the caller pages by score
-- as the heartbeat-mirror sweep does (_score_page.lua, prepended at load time).
-- KEYS: seeded, online, heartbeat
-- ARGV: cutoff ms (inclusive), from score (inclusive, or '-inf'), members to skip at that
--       score, page size
-- Returns {seeded 0|1, online count, ids csv, ms csv, count, last score, members with the last
-- score in this page}.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {0, 0, '', '', 0, '', 0}
end
local ids, ms, n, last, same = score_page(KEYS[3], ARGV[2], ARGV[1], ARGV[3], ARGV[4])
return {1, redis.call('SCARD', KEYS[2]), ids, ms, n, last, same}
