-- One chunk of the pings newer than the heartbeat-mirror watermark, in a compact form (the
-- paging of _score_page.lua, prepended at load time).
-- KEYS: heartbeat
-- ARGV: from ms (inclusive), members to skip at that score, chunk size
-- Returns {ids csv, ms csv, count, last ms, members with the last ms in this chunk}.
return {score_page(KEYS[1], ARGV[1], '+inf', ARGV[2], ARGV[3])}
