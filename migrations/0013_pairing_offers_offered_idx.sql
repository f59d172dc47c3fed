-- migrate: no-transaction
-- Offers are deleted 30 days after they were made (shared/retention.py); without an index on offered_at each batch would scan the table.
-- Built CONCURRENTLY so writes go on while it builds (docs/migrations.md).
CREATE INDEX CONCURRENTLY IF NOT EXISTS pairing_offers_offered_idx ON pairing_offers (offered_at);
