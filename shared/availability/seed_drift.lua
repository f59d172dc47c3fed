-- Before a seed's swap: compare one slice of a freshly built key with its live twin, to report
-- the drift the swap heals. Sets and hashes are walked with SSCAN / HSCAN (nothing else writes
-- the temp keys), sorted sets by rank.
-- KEYS: temp key, live key
-- ARGV: type (set | hash | zset), cursor (a rank for zset), count
-- Returns {next cursor ('0' when done), members seen, present in live, present with equal value}.
local kind, cursor, count = ARGV[1], ARGV[2], tonumber(ARGV[3])
local ids, vals, next_cursor = {}, {}, '0'
if kind == 'set' then
  local scan = redis.call('SSCAN', KEYS[1], cursor, 'COUNT', count)
  next_cursor, ids = scan[1], scan[2]
elseif kind == 'hash' then
  local scan = redis.call('HSCAN', KEYS[1], cursor, 'COUNT', count)
  next_cursor = scan[1]
  for i = 1, #scan[2], 2 do
    ids[#ids + 1] = scan[2][i]
    vals[#vals + 1] = scan[2][i + 1]
  end
else
  local start = tonumber(cursor)
  ids = redis.call('ZRANGE', KEYS[1], start, start + count - 1)
  if #ids == count then next_cursor = tostring(start + count) end
end
if #ids == 0 then return {next_cursor, 0, 0, 0} end
local both, equal = 0, 0
local live
if kind == 'set' then
  live = redis.call('SMISMEMBER', KEYS[2], unpack(ids))
  for i = 1, #ids do if live[i] == 1 then both = both + 1 end end
elseif kind == 'hash' then
  live = redis.call('HMGET', KEYS[2], unpack(ids))
  for i = 1, #ids do
    if live[i] then
      both = both + 1
      if live[i] == vals[i] then equal = equal + 1 end
    end
  end
else
  live = redis.call('ZMSCORE', KEYS[2], unpack(ids))
  for i = 1, #ids do if live[i] then both = both + 1 end end
end
return {next_cursor, #ids, both, equal}
