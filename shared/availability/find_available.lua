-- Pick up to `limit` fresh available mitras, fairly: walk the ring (the available members in
-- a fixed lexical order) from the cursor left by the previous pick, wrapping around once, so
-- consecutive blasts hand out consecutive slices and every available mitra gets its turn.
--
-- The work is bounded by the fresh members, never by the ring: when at most `limit` + the
-- excluded count are fresh, they are read straight from the score range (O(log n + k)); the
-- ring walk stops after MAX_SCAN members, and a walk that found too few (most of the ring is
-- stale: a heartbeat blackout the auto-offline breaker keeps alive) goes on in ring order
-- among the fresh members read from the score range. Valkey is blocked for O(MAX_SCAN + limit + excluded), whatever the mix.
-- KEYS: seeded, available, ring, ring cursor
-- ARGV: cutoff ms (fresh = heartbeat > cutoff), limit, excluded ids...
-- Returns the picked ids, or nil when the mirror is not seeded.
local K_SEEDED, K_AVAIL, K_RING, K_CURSOR = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('EXISTS', K_SEEDED) == 0 then return false end

local cutoff, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local excluded, n_excluded = {}, #ARGV - 2
for i = 3, #ARGV do excluded[ARGV[i]] = true end
local fresh_from = '(' .. ARGV[1]

local picked, chosen = {}, {}
if limit <= 0 then return picked end

local function take(id)
  if not excluded[id] and not chosen[id] then
    picked[#picked + 1] = id
    chosen[id] = true
    return true
  end
  return false
end

-- Few fresh: every one of them is picked anyway, no walk needed.
local fresh = redis.call('ZCOUNT', K_AVAIL, fresh_from, '+inf')
if fresh == 0 then return picked end
if fresh <= limit + n_excluded then
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', K_AVAIL, fresh_from, '+inf')) do
    if #picked >= limit then break end
    take(id)
  end
  return picked
end

local MAX_SCAN = math.max(limit * 8, 256)
local total = redis.call('ZCARD', K_RING)
local cursor = redis.call('GET', K_CURSOR)
local from = cursor and ('(' .. cursor) or '-'
local batch = math.max(limit * 2, 64)
local bound = math.min(total, MAX_SCAN)
local scanned, wrapped, last = 0, false, nil
while #picked < limit and scanned < bound do
  local ids = redis.call('ZRANGEBYLEX', K_RING, from, '+', 'LIMIT', 0, batch)
  if #ids == 0 then
    if wrapped then break end
    wrapped, from = true, '-'
  else
    local scores = redis.call('ZMSCORE', K_AVAIL, unpack(ids))
    for i, id in ipairs(ids) do
      scanned = scanned + 1
      local score = scores[i]
      if score and tonumber(score) > cutoff and take(id) then last = id end
      if #picked >= limit or scanned >= bound then break end
    end
    from = '(' .. ids[#ids]
  end
end

-- Mostly stale ring: continue the rotation among the fresh members read by score (at most
-- FILL_POOL of them, sorted in ring order), after the last one handed out.
if #picked < limit then
  local FILL_POOL = math.max(limit * 40, 1024)
  local pool = redis.call('ZRANGEBYSCORE', K_AVAIL, fresh_from, '+inf', 'LIMIT', 0, FILL_POOL)
  table.sort(pool)
  local after = last or cursor or ''
  local start = #pool + 1
  for i, id in ipairs(pool) do
    if id > after then start = i; break end
  end
  for step = 0, #pool - 1 do
    if #picked >= limit then break end
    local id = pool[((start - 1 + step) % #pool) + 1]
    if take(id) then last = id end
  end
end
if last then redis.call('SET', K_CURSOR, last) end
return picked
