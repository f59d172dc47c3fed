-- Paid time a customer lost through no fault of their own (the mitra ended early, a payment
-- settled after its session closed) is owed back: one row per refund due, marked once refunded.
CREATE TABLE session_refunds (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id    uuid NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
    payment_id    uuid UNIQUE REFERENCES payments (id),  -- a payment is refunded at most once
    amount_idr    bigint NOT NULL CHECK (amount_idr > 0),
    reason        text NOT NULL,
    created_at    timestamptz NOT NULL,
    refunded_at   timestamptz,
    refunded_by   text
);
CREATE INDEX session_refunds_session_idx ON session_refunds (session_id);
