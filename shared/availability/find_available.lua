-- Pick up to `limit` fresh available mitras, fairly: walk the ring (the available members in
-- a fixed lexical order) from the cursor left by the previous pick, wrapping around once, so
-- consecutive blasts hand out consecutive slices and every available mitra gets its turn.
-- KEYS: seeded, available, ring, ring cursor
-- ARGV: cutoff ms (fresh = heartbeat > cutoff), limit, excluded ids...
-- Returns the picked ids, or nil when the mirror is not seeded.
local K_SEEDED, K_AVAIL, K_RING, K_CURSOR = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('EXISTS', K_SEEDED) == 0 then return false end

local cutoff, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local excluded = {}
for i = 3, #ARGV do excluded[ARGV[i]] = true end

local total = redis.call('ZCARD', K_RING)
local picked = {}
if total == 0 or limit <= 0 then return picked end

local cursor = redis.call('GET', K_CURSOR)
local from = cursor and ('(' .. cursor) or '-'
local batch = math.max(limit * 2, 64)
local scanned, wrapped, last = 0, false, nil
while #picked < limit and scanned < total do
  local ids = redis.call('ZRANGEBYLEX', K_RING, from, '+', 'LIMIT', 0, batch)
  if #ids == 0 then
    if wrapped then break end
    wrapped, from = true, '-'
  else
    for _, id in ipairs(ids) do
      scanned = scanned + 1
      local score = redis.call('ZSCORE', K_AVAIL, id)
      if score and tonumber(score) > cutoff and not excluded[id] then
        picked[#picked + 1] = id
        last = id
      end
      if #picked >= limit or scanned >= total then break end
    end
    from = '(' .. ids[#ids]
  end
end
if last then redis.call('SET', K_CURSOR, last) end
return picked
