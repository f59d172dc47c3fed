-- Control center (docs/control-center.md): blocked customers, the audit trail of every staff change, and
-- the indexes behind the paged lists and searches.

-- A blocked customer cannot sign in (403 ACCOUNT_BLOCKED); NULL = not blocked.
ALTER TABLE customers ADD COLUMN blocked_at timestamptz;
ALTER TABLE customers ADD COLUMN blocked_by text;

-- One row per control-center change: who (actor `cc:<id>`), what (action), on what (target).
CREATE TABLE cc_audit_log (
    id           bigserial PRIMARY KEY,
    actor        text NOT NULL,
    action       text NOT NULL,
    target_type  text NOT NULL CHECK (target_type IN ('mitra', 'customer', 'cc_user', 'app_config', 'chat_session')),
    target_id    text NOT NULL,
    at           timestamptz NOT NULL,
    detail       jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX cc_audit_log_target_idx ON cc_audit_log (target_type, target_id, id DESC);
CREATE INDEX cc_audit_log_actor_idx ON cc_audit_log (actor, id DESC);

-- Keyset pages, newest first.
CREATE INDEX customers_created_idx ON customers (created_at DESC, id DESC);
CREATE INDEX mitras_created_idx ON mitras (created_at DESC, id DESC);
CREATE INDEX chat_sessions_requested_idx ON chat_sessions (requested_at DESC, id DESC);
CREATE INDEX chat_sessions_customer_requested_idx ON chat_sessions (customer_id, requested_at DESC, id DESC);
CREATE INDEX chat_sessions_mitra_requested_idx ON chat_sessions (mitra_id, requested_at DESC, id DESC);
