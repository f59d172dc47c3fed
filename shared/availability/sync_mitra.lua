-- Write one mitra's Postgres truth into the mirror and re-derive its `available` entry.
-- KEYS: the mutation layout of _available_rule.lua (prepended at load time)
-- ARGV: id, online (0|1), active (0|1), used, max override ('' = none),
--       heartbeat ms to set ('' = keep), heartbeat ms to use when keeping but absent
-- Returns {online (0|1), used, effective max, heartbeat ms or ''}.
local id = ARGV[1]
if ARGV[2] == '1' then
  redis.call('SADD', K_ONLINE, id)
  if ARGV[6] ~= '' then
    redis.call('ZADD', K_HB, 'GT', ARGV[6], id)  -- GT adds a new member, never moves one back
  else
    redis.call('ZADD', K_HB, 'NX', ARGV[7], id)
  end
else
  redis.call('SREM', K_ONLINE, id)
  redis.call('ZREM', K_HB, id)
end
if ARGV[3] == '1' then
  redis.call('SREM', K_DEACT, id)
else
  redis.call('SADD', K_DEACT, id)
end
if tonumber(ARGV[4]) > 0 then
  redis.call('HSET', K_USED, id, ARGV[4])
else
  redis.call('HDEL', K_USED, id)
end
if ARGV[5] ~= '' then
  redis.call('HSET', K_MAX, id, ARGV[5])
else
  redis.call('HDEL', K_MAX, id)
end
derive(id)
if redis.call('EXISTS', K_LOCK) == 1 then
  redis.call('SADD', K_DIRTY, id)
end
return {ARGV[2] == '1' and 1 or 0, tonumber(ARGV[4]), effective_max(id), redis.call('ZSCORE', K_HB, id) or ''}
