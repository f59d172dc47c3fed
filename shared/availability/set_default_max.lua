-- Change the default max concurrent sessions (app_config) and re-derive the available entries
-- of one page of online mitras; mirror.set_default_max calls it page after page, so no call
-- holds Valkey for long at any size.
-- The first call (ARGV[1] set) writes the default before it derives anything, and in the same
-- step tells a seed that holds the lock that the config changed (its snapshot may predate the
-- change: it re-applies the default after its swap). Every later mutation script (sync_mitra,
-- heartbeat) reads the new default from K_CONFIG, so whatever they derive between two pages
-- already follows it.
-- The pages are an SSCAN of the online set (https://valkey.io/commands/scan/): every member
-- online for the whole scan is returned at least once; one may come back twice (deriving is
-- idempotent), and one added during the scan may be missed. A mitra that comes online during
-- the scan was derived by its own sync_mitra under the new default, so missing it is harmless;
-- derive_many() reads every entry of the page's mitras when the page runs, so a page that
-- reaches a mitra after a concurrent write derives from the latest state. A seed that swaps in
-- between two pages leaves the cursor on its new online set: it built that set's entries under
-- the new default, or re-applies it after the swap (the '*config' mark).
-- KEYS: the mutation layout of _available_rule.lua (prepended at load time)
-- ARGV: new default max ('' on every page after the first), SSCAN cursor, members per page (COUNT hint)
-- Returns {next cursor ('0' when the scan is done), members re-derived by this call}. The cursor
-- stays a string end to end: it is a 64-bit number, which a Lua double cannot always hold.
if ARGV[1] ~= '' then
  redis.call('HSET', K_CONFIG, 'default_max', ARGV[1])
  if redis.call('EXISTS', K_LOCK) == 1 then
    redis.call('SADD', K_DIRTY, '*config')
  end
end
local page = redis.call('SSCAN', K_ONLINE, ARGV[2], 'COUNT', ARGV[3])
derive_many(page[2])
return {page[1], #page[2]}
