-- Pairing: indexes for the session-expiry sweep (one partial index per deadline it scans)
-- and for the per-session offer lookups of accept/decline.
CREATE INDEX chat_sessions_searching_due_idx ON chat_sessions (search_started_at) WHERE status = 'searching';
CREATE INDEX chat_sessions_unpaid_due_idx ON chat_sessions (payment_deadline_at) WHERE status = 'pending_payment';
CREATE INDEX chat_sessions_active_due_idx ON chat_sessions (expires_at) WHERE status = 'active';
-- Offers still waiting for an answer (the "every offer declined" check and closing offers).
CREATE INDEX pairing_offers_pending_idx ON pairing_offers (session_id) WHERE response IS NULL;
