-- migrate: no-transaction
-- A B-tree behind the control center's mitra search by a phone number typed from its start:
-- `phone_e164 LIKE '+62813…%'` (docs/control-center.md, "Paging and search"), as 0033 is for
-- customers. `text_pattern_ops` lets LIKE use it under any collation
-- (https://www.postgresql.org/docs/current/indexes-opclass.html).
-- Built CONCURRENTLY so mitra edits go on while it builds (docs/migrations.md).
CREATE INDEX CONCURRENTLY IF NOT EXISTS mitras_phone_prefix ON mitras (phone_e164 text_pattern_ops);
