-- The heartbeat hot path in one round trip: reject deactivated or revoked callers, refresh
-- the ping of an online mitra (heartbeat and available score), and answer its status.
-- KEYS: online, deactivated, used, max, heartbeat, available, config, seeded, revoked:<sid>
-- ARGV: id, now ms
-- Returns {'unseeded'} | {'inactive'} | {'revoked'} | {'online'|'offline', used, max, heartbeat ms or ''}.
local K_ONLINE, K_DEACT, K_USED, K_MAX, K_HB, K_AVAIL, K_CONFIG, K_SEEDED, K_REVOKED =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local id, now = ARGV[1], ARGV[2]

-- Without the marker the deactivated set cannot be trusted (FLUSHALL, restart): the caller
-- falls back to the Postgres guard.
if redis.call('EXISTS', K_SEEDED) == 0 then return {'unseeded'} end
if redis.call('SISMEMBER', K_DEACT, id) == 1 then return {'inactive'} end
if redis.call('EXISTS', K_REVOKED) == 1 then return {'revoked'} end

local used = tonumber(redis.call('HGET', K_USED, id) or '0')
local max = redis.call('HGET', K_MAX, id) or redis.call('HGET', K_CONFIG, 'default_max') or '1'
if redis.call('SISMEMBER', K_ONLINE, id) == 0 then
  -- Auto-offlined (or never online): the app must call online again; the ping is not kept.
  return {'offline', used, tonumber(max), ''}
end
redis.call('ZADD', K_HB, 'GT', now, id)
local hb = redis.call('ZSCORE', K_HB, id)
if redis.call('ZSCORE', K_AVAIL, id) then
  redis.call('ZADD', K_AVAIL, hb, id)
end
return {'online', used, tonumber(max), hb}
