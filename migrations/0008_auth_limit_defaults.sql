-- Per-IP limits of sign-in routes (docs/auth.md): Google/Apple sign-in and staff login.
-- Mobile carriers put many customers behind one address, hence the generous identity limit.
INSERT INTO app_config (key, value) VALUES
    ('identity_signins_per_ip_per_hour', '120'),
    ('cc_logins_per_ip_per_hour', '60')
ON CONFLICT (key) DO NOTHING;
