-- The app_config defaults (shared/app_config.py); existing values (edited by the control center) are kept.
INSERT INTO app_config (key, value) VALUES
    ('otp_ttl_seconds', '300'),
    ('otp_resend_cooldown_seconds', '60'),
    ('otp_max_requests_per_hour', '5'),
    ('otp_max_verify_attempts', '5'),
    ('otp_max_requests_per_ip_per_hour', '30'),
    ('anonymous_signins_per_ip_per_hour', '30'),
    ('cc_max_failed_logins', '5'),
    ('cc_lockout_minutes', '15'),
    ('mitra_max_concurrent_sessions', '1'),
    ('session_default_minutes', '30')
ON CONFLICT (key) DO NOTHING;
