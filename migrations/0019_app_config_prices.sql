-- Customers pay per minute: the price (IDR, integer) and the durations a session may be booked
-- for are settings staff can change without a release (docs/payments.md). Existing values are kept.
INSERT INTO app_config (key, value) VALUES
    ('price_per_minute_idr', '1000'),
    ('session_allowed_minutes', '[5, 10, 15, 20, 30, 45, 60, 90, 120]')
ON CONFLICT (key) DO NOTHING;
