-- Staff search by name, email or phone is a case-insensitive substring match (ILIKE '%…%',
-- docs/control-center.md, "Paging and search"), which no B-tree can serve: at a million
-- customers it scanned the whole table. pg_trgm's GIN operator class indexes exactly that
-- (https://www.postgresql.org/docs/current/pgtrgm.html#PGTRGM-INDEX). Cloud SQL for
-- PostgreSQL supports it (https://cloud.google.com/sql/docs/postgres/extensions); the
-- embedded server used by the tests picks a Postgres that ships it (infra/embedded.py).
-- The indexes follow, one CONCURRENTLY file each (0026 to 0030).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
