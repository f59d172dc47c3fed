-- Apple tells whether an email is a private relay address (`is_private_email`) and later that
-- the user stopped or restarted forwarding to it (the email-disabled / email-enabled
-- notifications). Both are kept so nothing is mailed to a relay that no longer forwards.
-- Adding columns with constant defaults rewrites no rows; the lock is brief but waits for no one.
SET LOCAL lock_timeout = '5s';

ALTER TABLE customers
    ADD COLUMN email_private_relay boolean NOT NULL DEFAULT false,
    ADD COLUMN email_forwarding_disabled_at timestamptz;
