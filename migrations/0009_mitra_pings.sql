-- The heartbeat-mirror sweep writes every online mitra's last ping every minute. Written to
-- mitras (wide rows, last_heartbeat_at indexed) no such update could be HOT: each one added
-- entries to every index of mitras and the table bloated. Pings now have their own narrow
-- table whose only index is the key the sweep never changes, with free space on every page,
-- so the new row version stays on its page (a HOT update). mitras.last_heartbeat_at keeps the
-- pings written by going online, the auto-offline sweep and the Postgres heartbeat fallback;
-- a mitra's last ping is the later of the two (shared.availability.truth).
DROP INDEX IF EXISTS mitras_online_idx;
CREATE INDEX mitras_online_idx ON mitras (id) WHERE is_online AND is_active;

CREATE TABLE mitra_pings (
    mitra_id  uuid PRIMARY KEY REFERENCES mitras (id) ON DELETE CASCADE,
    at        timestamptz NOT NULL
) WITH (fillfactor = 50);
