-- One row per payment asked of a customer: the session's own (on accept) and each extension's.
-- The provider's order_id is unique, so a notification finds exactly one row; status moves
-- pending -> paid | failed once, by a conditional UPDATE (docs/payments.md).
CREATE TABLE payments (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id      uuid NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
    kind            text NOT NULL CHECK (kind IN ('session', 'extension')),
    minutes         bigint NOT NULL CHECK (minutes > 0),
    amount_idr      bigint NOT NULL CHECK (amount_idr >= 0),
    provider        text NOT NULL,
    order_id        text NOT NULL UNIQUE,
    status          text NOT NULL CHECK (status IN ('pending', 'paid', 'failed')),
    deadline_at     timestamptz NOT NULL,
    token           text,
    redirect_url    text,
    created_at      timestamptz NOT NULL,
    settled_at      timestamptz,
    settled_by      text,
    reason          text,
    provider_status text
);
CREATE INDEX payments_session_idx ON payments (session_id, created_at);
-- At most one extension waits for payment per session.
CREATE UNIQUE INDEX payments_one_pending_extension ON payments (session_id) WHERE kind = 'extension' AND status = 'pending';
-- The expiry sweep's reconciliation asks the provider about pending payments near their deadline.
CREATE INDEX payments_pending_deadline_idx ON payments (deadline_at) WHERE status = 'pending';
