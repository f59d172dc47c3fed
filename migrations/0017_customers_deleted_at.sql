-- Account deletion (App Store 5.1.1(v), Google Play's account-deletion policy) erases a
-- customer's personal data but keeps the row: chat sessions, messages and audit rows point to
-- it, and the other party's transcript must still read ("deleted user"). `deleted_at` marks
-- such a row (docs/auth.md, "Account deletion"). No rewrite, a brief lock that waits for no one.
SET LOCAL lock_timeout = '5s';

ALTER TABLE customers ADD COLUMN deleted_at timestamptz;
