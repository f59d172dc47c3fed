-- Sign in with Apple: account deletion must revoke the user's Apple tokens (App Store Review
-- Guideline 5.1.1(v); Apple's "Revoke tokens"), which needs the refresh token the server got by
-- exchanging the authorization code at sign-in. This table keeps that token, only encrypted
-- (AES-256-GCM, docs/auth.md), one live row per customer. A row whose revocation is due
-- (`revoke_after` set: the account was deleted or Apple access was withdrawn) has no customer
-- any more and waits for Apple to confirm; the sweep retries it until then, then deletes it.
SET LOCAL lock_timeout = '5s';

CREATE TABLE apple_tokens (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id           uuid REFERENCES customers (id),
    client_id             text NOT NULL,
    refresh_token_sealed  bytea NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    revoke_after          timestamptz,
    revoke_attempts       bigint NOT NULL DEFAULT 0,
    CHECK (revoke_after IS NOT NULL OR customer_id IS NOT NULL)
);
CREATE UNIQUE INDEX apple_tokens_live_idx ON apple_tokens (customer_id) WHERE revoke_after IS NULL;
CREATE INDEX apple_tokens_revoke_due_idx ON apple_tokens (revoke_after) WHERE revoke_after IS NOT NULL;
