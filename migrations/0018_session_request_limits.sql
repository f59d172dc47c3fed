-- Per-customer brakes on session requests (docs/pairing.md, "Request limits"): each request
-- pushes up to PAIRING_BLAST_SIZE mitras, so request+cancel cycles must not be free.
INSERT INTO app_config (key, value) VALUES
    ('session_requests_per_customer_per_hour', '20'),
    ('session_cancel_cooldown_seconds', '15')
ON CONFLICT (key) DO NOTHING;
