-- One page of a sorted set read by score, the one copy of the paging the sweeps' readers share
-- (stale_scan.lua, pings_since.lua), prepended at load time (Valkey scripts cannot import).
-- The members scored from `from` to `upto` (inclusive), after skipping `skip` of them, at most
-- `size`, as two comma-separated strings (ids and scores; parsed by Postgres, not by the
-- client), their count, the last score and how many members of the page have it. The next
-- page starts at that score and skips those members, so a page boundary inside a run of equal
-- scores loses nothing.
local function score_page(key, from, upto, skip, size)
  local rows = redis.call('ZRANGEBYSCORE', key, from, upto, 'WITHSCORES', 'LIMIT', skip, size)
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
  return table.concat(ids, ','), table.concat(ms, ','), #ids, last, same
end
