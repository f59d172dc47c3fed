-- Going online or offline rewrites a mitras row (is_online, updated_at, last_heartbeat_at). With
-- is_online in the predicate of mitras_online_idx no such update could be HOT: each one added an
-- entry to every index of mitras (the key, the phone, the creation order), and the auto-offline
-- sweep offlines up to thousands of mitras in one statement. Without an index that names a
-- status column, and with free space kept on each page, the new row version stays on its page.
-- The index served only the Postgres fallback's reads of online mitras, which run when Valkey
-- is down; they now scan mitras (docs/decisions.md weighs the two).
DROP INDEX IF EXISTS mitras_online_idx;
ALTER TABLE mitras SET (fillfactor = 90);

-- mitra_status_logs is an append-only history whose rows are written by the statement that has
-- just updated (and so locked) the mitra they name; mitras are deactivated, never deleted. Its
-- foreign key re-read the mitra for every row logged, about 9 µs each: a third of the
-- auto-offline statement. The history outlives any row it names.
ALTER TABLE mitra_status_logs DROP CONSTRAINT IF EXISTS mitra_status_logs_mitra_id_fkey;
