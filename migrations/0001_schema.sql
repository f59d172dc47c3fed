-- The initial schema. Postgres is the source of truth; Valkey mirrors availability.

CREATE TABLE customers (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    display_name  text,
    phone_e164    text UNIQUE,
    email         text,
    google_sub    text UNIQUE,
    apple_sub     text UNIQUE,
    is_anonymous  boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE mitras (
    id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    phone_e164               text NOT NULL UNIQUE,
    display_name             text NOT NULL,
    is_active                boolean NOT NULL DEFAULT true,
    is_online                boolean NOT NULL DEFAULT false,
    max_concurrent_sessions  integer CHECK (max_concurrent_sessions IS NULL OR max_concurrent_sessions >= 0),
    last_heartbeat_at        timestamptz,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mitras_online_idx ON mitras (last_heartbeat_at) WHERE is_online AND is_active;

CREATE TABLE mitra_status_logs (
    id        bigserial PRIMARY KEY,
    mitra_id  uuid NOT NULL REFERENCES mitras (id) ON DELETE CASCADE,
    event     text NOT NULL CHECK (event IN ('online', 'offline', 'auto_offline', 'deactivated', 'activated', 'edited')),
    actor     text NOT NULL,
    at        timestamptz NOT NULL DEFAULT now(),
    detail    jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX mitra_status_logs_mitra_idx ON mitra_status_logs (mitra_id, at DESC, id DESC);

CREATE TABLE devices (
    id          bigserial PRIMARY KEY,
    user_type   text NOT NULL CHECK (user_type IN ('customer', 'mitra')),
    user_id     uuid NOT NULL,
    fcm_token   text NOT NULL UNIQUE,
    platform    text NOT NULL CHECK (platform IN ('android', 'ios', 'web')),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_user_idx ON devices (user_type, user_id);

CREATE TABLE control_center_users (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email               text NOT NULL,
    password_hash       text NOT NULL,
    role                text NOT NULL CHECK (role IN ('admin', 'operator')),
    is_active           boolean NOT NULL DEFAULT true,
    failed_login_count  integer NOT NULL DEFAULT 0,
    lockout_until       timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
-- Emails are unique case-insensitively (no citext: the embedded server ships no contrib).
CREATE UNIQUE INDEX control_center_users_email_key ON control_center_users (lower(email));

CREATE TABLE auth_sessions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_type       text NOT NULL CHECK (user_type IN ('customer', 'mitra', 'cc')),
    user_id         uuid NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    revoked_reason  text,
    user_agent      text
);
CREATE INDEX auth_sessions_user_idx ON auth_sessions (user_type, user_id) WHERE revoked_at IS NULL;
CREATE INDEX auth_sessions_revoked_idx ON auth_sessions (revoked_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE refresh_tokens (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id   uuid NOT NULL REFERENCES auth_sessions (id) ON DELETE CASCADE,
    token_hash   bytea NOT NULL UNIQUE,
    issued_at    timestamptz NOT NULL DEFAULT now(),
    used_at      timestamptz,
    replaced_by  uuid REFERENCES refresh_tokens (id)
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);

CREATE TABLE otp_requests (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    phone_e164    text NOT NULL,
    flow          text NOT NULL CHECK (flow IN ('customer', 'mitra')),
    code_hash     bytea NOT NULL,
    provider_ref  text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    attempts      integer NOT NULL DEFAULT 0,
    consumed_at   timestamptz,
    client_ip     text
);
CREATE INDEX otp_requests_phone_idx ON otp_requests (phone_e164, created_at DESC);
CREATE INDEX otp_requests_ip_idx ON otp_requests (client_ip, created_at DESC);

CREATE TABLE app_config (
    key         text PRIMARY KEY,
    value       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE chat_sessions (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    customer_id         uuid NOT NULL REFERENCES customers (id),
    mitra_id            uuid REFERENCES mitras (id),
    status              text NOT NULL CHECK (status IN ('searching', 'pending_payment', 'active', 'ended', 'expired', 'cancelled')),
    duration_minutes    integer NOT NULL CHECK (duration_minutes > 0),
    requested_at        timestamptz NOT NULL DEFAULT now(),
    search_started_at   timestamptz NOT NULL DEFAULT now(),  -- last (re)blast; the pairing timeout counts from here
    accepted_at         timestamptz,
    payment_deadline_at timestamptz,
    paid_at             timestamptz,
    started_at          timestamptz,
    expires_at          timestamptz,
    ended_at            timestamptz,
    end_reason          text,
    extension_count     integer NOT NULL DEFAULT 0,
    excluded_mitra_ids  uuid[] NOT NULL DEFAULT '{}'
);
-- One open session per customer, enforced by the database.
CREATE UNIQUE INDEX chat_sessions_one_open_per_customer
    ON chat_sessions (customer_id) WHERE status IN ('searching', 'pending_payment', 'active');
-- Used capacity = count of a mitra's sessions in (active, pending_payment).
CREATE INDEX chat_sessions_mitra_open_idx ON chat_sessions (mitra_id) WHERE status IN ('pending_payment', 'active');
CREATE INDEX chat_sessions_status_idx ON chat_sessions (status, requested_at);

CREATE TABLE pairing_offers (
    session_id    uuid NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
    mitra_id      uuid NOT NULL REFERENCES mitras (id),
    offered_at    timestamptz NOT NULL DEFAULT now(),
    responded_at  timestamptz,
    response      text CHECK (response IN ('accepted', 'declined', 'lost')),
    PRIMARY KEY (session_id, mitra_id)
);
CREATE INDEX pairing_offers_mitra_idx ON pairing_offers (mitra_id, offered_at DESC);

CREATE TABLE chat_session_events (
    id          bigserial PRIMARY KEY,
    session_id  uuid NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
    type        text NOT NULL,
    actor       text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX chat_session_events_session_idx ON chat_session_events (session_id, at, id);
