-- migrate: no-transaction
-- The newest-first walk of the customer search (docs/control-center.md, "Paging and search")
-- as an index-only scan: the keyset order `(created_at DESC, id DESC)` carrying what the walk
-- tests, the lowered name and email (`search_text`, 0035) and the phone. Index-only scans
-- read no table page for the rows the visibility map marks all-visible, which autovacuum keeps
-- so (https://www.postgresql.org/docs/current/indexes-index-only-scans.html).
-- Built CONCURRENTLY so sign-ups and profile edits go on while it builds (docs/migrations.md).
CREATE INDEX CONCURRENTLY IF NOT EXISTS customers_search_walk ON customers (created_at DESC, id DESC) INCLUDE (search_text, phone_e164);
