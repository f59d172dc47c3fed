-- migrate: no-transaction
-- Sessions are deleted 30 days after they expire (shared/retention.py); without an index on expires_at each batch would scan the table.
-- Built CONCURRENTLY so writes go on while it builds (docs/migrations.md).
CREATE INDEX CONCURRENTLY IF NOT EXISTS auth_sessions_expires_idx ON auth_sessions (expires_at);
