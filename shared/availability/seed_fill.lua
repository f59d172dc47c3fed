-- Fill one temp key of a seed from one compact chunk (members and values as comma-separated
-- strings, split here so the client encodes two arguments instead of thousands). A chunk is
-- small (SEED_CHUNK members), so each call blocks Valkey for a few milliseconds at most.
-- While it holds the chunk it also does the two things that used to be passes of their own:
--   * merge: a heartbeat / available score is raised to the live ping when that is newer
--     (pings reach Postgres only through the heartbeat-mirror sweep and must not move back);
--     pings that land after their chunk was filled are applied by swap_seed;
--   * drift: how many of the chunk's members the live twin has (and, for hashes, with the
--     same value), from which the caller computes what the swap is about to heal.
-- KEYS: the temp key, the temp ring (written only for 'available': same members, score 0),
--       the live twin of the temp key, the live heartbeat zset
-- ARGV: kind (set | hash | zset | available), ids csv, values csv ('' for sets)
-- Returns {members written, present in the live twin, present there with an equal value}.
local kind, ids, vals = ARGV[1], {}, {}
for id in string.gmatch(ARGV[2], '[^,]+') do ids[#ids + 1] = id end
for v in string.gmatch(ARGV[3], '[^,]+') do vals[#vals + 1] = v end
local BATCH = 500  -- well under Lua's unpack limit
local both, equal = 0, 0
for i = 1, #ids, BATCH do
  local last = math.min(i + BATCH - 1, #ids)
  local chunk = {unpack(ids, i, last)}
  local live, pings
  if kind == 'set' then
    live = redis.call('SMISMEMBER', KEYS[3], unpack(chunk))
  elseif kind == 'hash' then
    live = redis.call('HMGET', KEYS[3], unpack(chunk))
  else
    live = redis.call('ZMSCORE', KEYS[3], unpack(chunk))
    pings = KEYS[4] == KEYS[3] and live or redis.call('ZMSCORE', KEYS[4], unpack(chunk))
  end
  local args, ring = {}, {}
  for j = i, last do
    local k = j - i + 1
    if kind == 'set' then
      if live[k] == 1 then both = both + 1 end
      args[#args + 1] = ids[j]
    elseif kind == 'hash' then
      if live[k] then
        both = both + 1
        if live[k] == vals[j] then equal = equal + 1 end
      end
      args[#args + 1] = ids[j]
      args[#args + 1] = vals[j]
    else
      if live[k] then both = both + 1 end
      local score = vals[j]
      if pings[k] and tonumber(pings[k]) > tonumber(score) then score = pings[k] end
      args[#args + 1] = score
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
return {#ids, both, equal}
