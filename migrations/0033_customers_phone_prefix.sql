-- migrate: no-transaction
-- A B-tree behind the control center's customer search by a phone number typed from its start
-- (`0812 3456 7890`, `+62812…`): `phone_e164 LIKE '+62812…%'` (docs/control-center.md, "Paging
-- and search"). The trigram index (0030) reads the posting list of every digit trigram, and
-- `628` or `812` are in nearly every phone, while a prefix is one B-tree range. `text_pattern_ops`
-- lets LIKE use it under any collation (the unique index on phone_e164 only serves LIKE under
-- "C": https://www.postgresql.org/docs/current/indexes-opclass.html).
-- Built CONCURRENTLY so sign-ups and profile edits go on while it builds (docs/migrations.md).
CREATE INDEX CONCURRENTLY IF NOT EXISTS customers_phone_prefix ON customers (phone_e164 text_pattern_ops);
