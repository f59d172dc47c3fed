-- Apply one page of pings from a heartbeat ZSET to a heartbeat / available pair, never moving a
-- score back (XX GT: only members already there, only upwards). The seed runs it before its
-- swap, from the live heartbeat into its temp keys (renewing its lease as seed_fill does), so
-- the swap itself applies at most the last page of pings whatever the size; and once after
-- the swap, from the retired heartbeat into the live keys, for the pings of instances whose
-- clock runs behind. Paging is by score, as the heartbeat-mirror sweep's: the next page
-- starts at the last score, skipping the members of that score already read.
-- KEYS: source heartbeat, target heartbeat, target available, seed lock
-- ARGV: from score (inclusive), members to skip at that score, page size, lock token ('' after
--       the swap: no lease to check), lock TTL (ms)
-- Returns {'lost'} when the lease is no longer the seeder's, else {count, last score, members
-- with the last score in this page}.
local SRC, T_HB, T_AV, K_LOCK = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if ARGV[4] ~= '' then
  if redis.call('GET', K_LOCK) ~= ARGV[4] then return {'lost'} end
  redis.call('PEXPIRE', K_LOCK, ARGV[5])
end
local rows = redis.call('ZRANGEBYSCORE', SRC, ARGV[1], '+inf', 'WITHSCORES', 'LIMIT', ARGV[2], ARGV[3])
local args, last, same = {}, '', 0
for i = 1, #rows, 2 do
  args[#args + 1] = rows[i + 1]
  args[#args + 1] = rows[i]
  if rows[i + 1] == last then same = same + 1 else last, same = rows[i + 1], 1 end
end
if #args > 0 then
  redis.call('ZADD', T_HB, 'XX', 'GT', unpack(args))
  redis.call('ZADD', T_AV, 'XX', 'GT', unpack(args))
end
return {#rows / 2, last, same}
