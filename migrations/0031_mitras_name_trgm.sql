-- migrate: no-transaction
-- A trigram index (pg_trgm, migration 0025) behind the control center's mitra search by display name:
-- `display_name ILIKE '%…%'` (docs/control-center.md, "Paging and search"). Each branch of the
-- search's OR has an index of its own, so Postgres ORs bitmap scans instead of reading the table.
-- Built CONCURRENTLY so mitra edits go on while it builds (docs/migrations.md).
CREATE INDEX CONCURRENTLY IF NOT EXISTS mitras_display_name_trgm ON mitras USING gin (display_name gin_trgm_ops);
