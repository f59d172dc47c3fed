-- Sliding-window limiter: one ZSET of hit times per subject.
-- KEYS[1] = the counter (ZSET member -> epoch ms)
-- ARGV = now_ms, window_ms, limit, member, mode
--   mode 'hit':  count a hit unless `limit` hits are already in the window
--   mode 'peek': count nothing, only say whether the window is full
--   mode 'add':  count a hit whatever the window holds (failures that must all be remembered)
-- Returns {allowed (1/0), retry_after_ms}; for 'add', whether the window was not yet full.
local key = KEYS[1]
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local mode = ARGV[5] or 'hit'
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
local function retry_after()
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if oldest[2] then return tonumber(oldest[2]) + window - now end
  return window
end
if mode == 'peek' then
  if count >= limit then return {0, retry_after()} end
  return {1, 0}
end
if mode == 'hit' and count >= limit then
  return {0, retry_after()}
end
redis.call('ZADD', key, now, ARGV[4])
redis.call('PEXPIRE', key, window)
if count >= limit then return {0, retry_after()} end
return {1, 0}
