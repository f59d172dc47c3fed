-- Chat messages (docs/chat.md): the conversation of a chat session, its read markers, and the
-- app_config keys of the chat (anonymity towards mitras, the per-sender send rate).

CREATE TABLE chat_messages (
    -- The cursor apps page with (`after`). Messages of one session are inserted under that
    -- session's row lock, so within a session ids grow in commit order (docs/chat.md).
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id         uuid NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
    sender_type        text NOT NULL CHECK (sender_type IN ('customer', 'mitra', 'system')),
    sender_id          uuid,
    client_message_id  uuid,
    body               text NOT NULL,
    -- System messages: the transition they announce (accepted, active, extended, ended, ...).
    detail             jsonb,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CHECK ((sender_type = 'system') = (sender_id IS NULL)),
    CHECK ((sender_type = 'system') = (client_message_id IS NULL))
);
-- A retried send finds its first message here instead of inserting a second one.
CREATE UNIQUE INDEX chat_messages_idempotency ON chat_messages (session_id, sender_type, sender_id, client_message_id)
    WHERE client_message_id IS NOT NULL;
CREATE INDEX chat_messages_session_idx ON chat_messages (session_id, id);

-- The last message id each party of a session has read; only ever moves forward.
CREATE TABLE chat_read_markers (
    session_id    uuid NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
    reader_type   text NOT NULL CHECK (reader_type IN ('customer', 'mitra')),
    reader_id     uuid NOT NULL,
    last_read_id  bigint NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, reader_type, reader_id)
);

-- The apps' session lists (docs/chat.md, Lists): newest first per customer and per mitra.
CREATE INDEX chat_sessions_customer_list_idx ON chat_sessions (customer_id, requested_at DESC, id DESC);
CREATE INDEX chat_sessions_mitra_list_idx ON chat_sessions (mitra_id, requested_at DESC, id DESC)
    WHERE mitra_id IS NOT NULL;

INSERT INTO app_config (key, value) VALUES
    ('mitra_sees_customer_name', '0'),
    ('chat_max_messages_per_minute', '60')
ON CONFLICT (key) DO NOTHING;
