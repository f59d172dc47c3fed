-- Revocations whose Valkey mark could not be written, counted in the transaction that revokes.
-- An instance that made no call while Valkey was paused or out of reach keeps its connection and
-- would go on trusting a mirror that lacks those marks. Every instance compares this count, at
-- most once a second, with the count the mirror says it has repaired (`{avail}:access:repaired`)
-- and repairs the mirror from Postgres when it is behind (docs/availability.md, "Outages and
-- access"). One row, written only when a mark write failed: no contention in steady state.
CREATE TABLE IF NOT EXISTS access_mirror_misses (
    id      boolean PRIMARY KEY DEFAULT true CHECK (id),
    missed  bigint NOT NULL DEFAULT 0
);

INSERT INTO access_mirror_misses (id, missed) VALUES (true, 0) ON CONFLICT (id) DO NOTHING;
