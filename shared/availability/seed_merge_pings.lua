-- Before a seed's swap: raise the temp heartbeat (and available) score of one slice of the
-- online members to the live ping when that is newer, because pings reach Postgres only
-- through the heartbeat-mirror sweep and must not move back. The slice is one SSCAN step of
-- the temp online set (which nothing else writes), so every member is visited whatever the
-- scores do meanwhile; pings that arrive after their slice are applied by swap_seed.
-- KEYS: temp online, temp heartbeat, temp available, live heartbeat
-- ARGV: SSCAN cursor, count
-- Returns the next cursor ('0' when done).
local scan = redis.call('SSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
local ids = scan[2]
if #ids > 0 then
  local live = redis.call('ZMSCORE', KEYS[4], unpack(ids))
  for i, id in ipairs(ids) do
    if live[i] then
      redis.call('ZADD', KEYS[2], 'XX', 'GT', live[i], id)
      redis.call('ZADD', KEYS[3], 'XX', 'GT', live[i], id)
    end
  end
end
return scan[1]
