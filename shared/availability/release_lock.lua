-- Delete a lock only if it still holds our token (never release another holder's lock).
-- KEYS: lock
-- ARGV: token
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
