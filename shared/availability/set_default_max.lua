-- Change the default max concurrent sessions (app_config) and re-derive the available entry
-- of every online mitra without an override.
-- KEYS: the mutation layout of _available_rule.lua (prepended at load time)
-- ARGV: new default max
-- Returns the number of online mitras re-derived.
redis.call('HSET', K_CONFIG, 'default_max', ARGV[1])
local online = redis.call('SMEMBERS', K_ONLINE)
for _, id in ipairs(online) do derive(id) end
if redis.call('EXISTS', K_LOCK) == 1 then
  redis.call('SADD', K_DIRTY, '*config')
end
return #online
