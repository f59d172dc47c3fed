-- One chunk of the pings newer than the heartbeat-mirror watermark, in a compact form: the ids
-- and the scores as two comma-separated strings (parsed by Postgres, not by the client).
-- Paging is by score: the next chunk starts at the last score, skipping the members of that
-- score already read, so a chunk boundary inside a run of equal scores loses nothing.
-- KEYS: heartbeat
-- ARGV: from ms (inclusive), members to skip at that score, chunk size
-- Returns {ids csv, ms csv, count, last ms, members with the last ms in this chunk}.
local rows = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf', 'WITHSCORES', 'LIMIT', ARGV[2], ARGV[3])
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
return {table.concat(ids, ','), table.concat(ms, ','), #ids, last, same}
