-- migrate: no-transaction
-- customers_search_walk (0037) has the same keys as customers_created_idx (0007),
-- `(created_at DESC, id DESC)`, so it serves every keyset page of the customer list as well;
-- the narrower index is only one more B-tree for every sign-up to write (docs/control-center.md,
-- "Paging and search"). No statement names an index, so the running release is unaffected.
-- Dropped CONCURRENTLY so reads and writes of the table go on meanwhile (docs/migrations.md).
DROP INDEX CONCURRENTLY IF EXISTS customers_created_idx;
