-- The heartbeat hot path in one round trip: reject deactivated or revoked callers, refresh
-- the ping of an online mitra (heartbeat and available score), and answer its status.
-- KEYS: the mutation layout of _available_rule.lua (prepended at load time), then seeded, revoked:<sid>
-- ARGV: id, now ms
-- Returns {'unseeded'} | {'inactive'} | {'revoked'} | {'online'|'offline', used, max, heartbeat ms or ''}.
local K_SEEDED, K_REVOKED = KEYS[11], KEYS[12]
local id, now = ARGV[1], ARGV[2]

-- Without the marker the deactivated set cannot be trusted (FLUSHALL, restart): the caller
-- falls back to the Postgres guard.
if redis.call('EXISTS', K_SEEDED) == 0 then return {'unseeded'} end
if redis.call('SISMEMBER', K_DEACT, id) == 1 then return {'inactive'} end
if redis.call('EXISTS', K_REVOKED) == 1 then return {'revoked'} end

local used = tonumber(redis.call('HGET', K_USED, id) or '0')
local max = effective_max(id)
if redis.call('SISMEMBER', K_ONLINE, id) == 0 then
  -- Auto-offlined (or never online): the app must call online again; the ping is not kept.
  return {'offline', used, max, ''}
end
redis.call('ZADD', K_HB, 'GT', now, id)
local hb = redis.call('ZSCORE', K_HB, id)
if redis.call('ZSCORE', K_AVAIL, id) then
  redis.call('ZADD', K_AVAIL, hb, id)
end
return {'online', used, max, hb}
