-- migrate: no-transaction
-- OTP requests are deleted 7 days after creation by the retention sweep (shared/retention.py); without an index on created_at each batch would scan the table.
-- Built CONCURRENTLY so writes go on while it builds (docs/migrations.md).
CREATE INDEX CONCURRENTLY IF NOT EXISTS otp_requests_created_idx ON otp_requests (created_at);
