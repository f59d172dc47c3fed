-- Fill one temp key of a seed from one compact chunk (members and values as comma-separated
-- strings, split here so the client encodes two arguments instead of thousands). A chunk is
-- small (SEED_CHUNK members), so each call blocks Valkey for a few milliseconds at most.
-- KEYS: the temp key, the temp ring (written only for 'available': same members, score 0)
-- ARGV: kind (set | hash | zset | available), ids csv, values csv ('' for sets)
-- Returns how many members were written.
local kind, ids, vals = ARGV[1], {}, {}
for id in string.gmatch(ARGV[2], '[^,]+') do ids[#ids + 1] = id end
for v in string.gmatch(ARGV[3], '[^,]+') do vals[#vals + 1] = v end
local BATCH = 500  -- well under Lua's unpack limit
for i = 1, #ids, BATCH do
  local args, ring = {}, {}
  for j = i, math.min(i + BATCH - 1, #ids) do
    if kind == 'set' then
      args[#args + 1] = ids[j]
    elseif kind == 'hash' then
      args[#args + 1] = ids[j]
      args[#args + 1] = vals[j]
    else
      args[#args + 1] = vals[j]
      args[#args + 1] = ids[j]
      ring[#ring + 1] = 0
      ring[#ring + 1] = ids[j]
    end
  end
  if kind == 'set' then
    redis.call('SADD', KEYS[1], unpack(args))
  elseif kind == 'hash' then
    redis.call('HSET', KEYS[1], unpack(args))
  else
    redis.call('ZADD', KEYS[1], unpack(args))
    if kind == 'available' then redis.call('ZADD', KEYS[2], unpack(ring)) end
  end
end
return #ids
