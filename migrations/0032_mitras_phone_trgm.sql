-- migrate: no-transaction
-- A trigram index (pg_trgm, migration 0025) behind the control center's mitra search by phone:
-- `phone_e164 ILIKE '%…%'` (docs/control-center.md, "Paging and search"). Each branch of the
-- search's OR has an index of its own, so Postgres ORs bitmap scans instead of reading the table.
-- Built CONCURRENTLY so mitra edits go on while it builds (docs/migrations.md).
CREATE INDEX CONCURRENTLY IF NOT EXISTS mitras_phone_trgm ON mitras USING gin (phone_e164 gin_trgm_ops);
