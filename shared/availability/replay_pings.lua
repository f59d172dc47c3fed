-- Raise the pings of online mitras to values answered from Postgres (the heartbeat's fallback,
-- replayed by an access repair), never moving one back; the available score follows the
-- heartbeat, as in heartbeat.lua.
-- KEYS: online, heartbeat, available
-- ARGV: ids as one comma-separated string, epoch ms likewise (same order)
-- Returns how many pings moved forward.
local K_ONLINE, K_HB, K_AVAIL = KEYS[1], KEYS[2], KEYS[3]
local ms = {}
for v in string.gmatch(ARGV[2], '[^,]+') do ms[#ms + 1] = v end
local i, moved = 0, 0
for id in string.gmatch(ARGV[1], '[^,]+') do
  i = i + 1
  if redis.call('SISMEMBER', K_ONLINE, id) == 1 then
    moved = moved + redis.call('ZADD', K_HB, 'GT', 'CH', ms[i], id)
    if redis.call('ZSCORE', K_AVAIL, id) then
      redis.call('ZADD', K_AVAIL, redis.call('ZSCORE', K_HB, id), id)
    end
  end
end
return moved
