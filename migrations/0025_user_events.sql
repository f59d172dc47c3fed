-- The per-user event feed (docs/events.md): one ordered, durable stream per customer and per
-- mitra, written in the same transaction as the change each event reports, read by
-- GET /api/{client,mitra}/events?after=. `id` is the cursor; within one user, ids are
-- allocated in commit order (the writer holds the user's advisory lock until it commits).
CREATE TABLE user_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_type   text NOT NULL CHECK (user_type IN ('customer', 'mitra')),
    user_id     uuid NOT NULL,
    type        text NOT NULL,
    session_id  uuid,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL
);
CREATE INDEX user_events_user_idx ON user_events (user_id, user_type, id);
