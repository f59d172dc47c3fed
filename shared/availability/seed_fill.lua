-- Fill the temp keys of a seed from one slice of the snapshot: up to SEED_CHUNK consecutive
-- mirrored mitras, each structure's members and values as comma-separated strings, split here
-- so the client encodes a few arguments instead of thousands. A slice is small, so each call
-- blocks Valkey for a few milliseconds. The online mitras' ids are read once and fill the
-- online set, the heartbeat, the available index and its ring (a flag per online mitra says
-- whether it is available). While it holds the slice the call also
--   * merges: a heartbeat / available score is raised to the live ping when that is newer
--     (pings reach Postgres only through the heartbeat-mirror sweep and must not move back);
--     pings that land after their slice was filled are applied by swap_seed;
--   * measures drift: how many of the slice's members each live structure has (and, for
--     hashes, with an equal value), from which the caller computes what the swap heals.
-- The seed lock is a lease: each call first checks it still holds the seeder's token and
-- extends it, so a long seed keeps it and a seeder that died lets it go within one TTL.
-- KEYS: temp online, deactivated, used, max, heartbeat, available, ring;
--       live online, deactivated, used, max, heartbeat, available; seed lock
-- ARGV: online ids, their pings (ms), their available flags ('1' or '0' each, no separator),
--       deactivated ids, used ids, used counts, max ids, max values; lock token, lock TTL (ms)
-- Returns {'lost'} when the lock is no longer the seeder's, else {present live, present live
-- with an equal value} for online, deactivated, used, max and available, in that order (ten
-- integers).
local T_ON, T_DE, T_USED, T_MAX, T_HB, T_AV, T_RING = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local L_ON, L_DE, L_USED, L_MAX, L_HB, L_AV = KEYS[8], KEYS[9], KEYS[10], KEYS[11], KEYS[12], KEYS[13]
local K_LOCK = KEYS[14]
if redis.call('GET', K_LOCK) ~= ARGV[9] then return {'lost'} end
redis.call('PEXPIRE', K_LOCK, ARGV[10])
local BATCH = 500  -- well under Lua's unpack limit
local call, unpack, tonumber, byte = redis.call, unpack, tonumber, string.byte

local function split(csv)
  local out = {}
  for x in string.gmatch(csv, '[^,]+') do out[#out + 1] = x end
  return out
end

local function fill_set(temp, live, ids)
  local both = 0
  for i = 1, #ids, BATCH do
    local last = math.min(i + BATCH - 1, #ids)
    for _, present in ipairs(call('SMISMEMBER', live, unpack(ids, i, last))) do
      if present == 1 then both = both + 1 end
    end
    call('SADD', temp, unpack(ids, i, last))
  end
  return both
end

local function fill_hash(temp, live, ids, vals)
  local both, equal = 0, 0
  for i = 1, #ids, BATCH do
    local last = math.min(i + BATCH - 1, #ids)
    local got = call('HMGET', live, unpack(ids, i, last))
    local args = {}
    for j = i, last do
      local v = got[j - i + 1]
      if v then
        both = both + 1
        if v == vals[j] then equal = equal + 1 end
      end
      args[#args + 1] = ids[j]
      args[#args + 1] = vals[j]
    end
    call('HSET', temp, unpack(args))
  end
  return both, equal
end

-- The online mitras: online set, heartbeat (merged with the live ping), available and ring.
local online, pings, flags = split(ARGV[1]), split(ARGV[2]), ARGV[3]
local on_both, av_both = fill_set(T_ON, L_ON, online), 0
for i = 1, #online, BATCH do
  local last = math.min(i + BATCH - 1, #online)
  local live_ping = call('ZMSCORE', L_HB, unpack(online, i, last))
  local live_av = call('ZMSCORE', L_AV, unpack(online, i, last))
  local hb, av, ring, n, m = {}, {}, {}, 0, 0
  for j = i, last do
    local k, id, score = j - i + 1, online[j], pings[j]
    local ping = live_ping[k]
    if ping and tonumber(ping) > tonumber(score) then score = ping end
    hb[n + 1], hb[n + 2], n = score, id, n + 2
    if byte(flags, j) == 49 then  -- '1': available
      if live_av[k] then av_both = av_both + 1 end
      av[m + 1], av[m + 2], ring[m + 1], ring[m + 2], m = score, id, 0, id, m + 2
    end
  end
  call('ZADD', T_HB, unpack(hb))
  if m > 0 then
    call('ZADD', T_AV, unpack(av))
    call('ZADD', T_RING, unpack(ring))
  end
end

local de_both = fill_set(T_DE, L_DE, split(ARGV[4]))
local used_both, used_equal = fill_hash(T_USED, L_USED, split(ARGV[5]), split(ARGV[6]))
local max_both, max_equal = fill_hash(T_MAX, L_MAX, split(ARGV[7]), split(ARGV[8]))
return {on_both, 0, de_both, 0, used_both, used_equal, max_both, max_equal, av_both, 0}
