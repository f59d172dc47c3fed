-- Postgres fallback of the rate limiter (shared/ratelimit.py): one row per counted hit,
-- used only while Valkey is unreachable, pruned as windows pass.
CREATE TABLE rate_limit_hits (
    id       bigserial PRIMARY KEY,
    bucket   text NOT NULL,
    subject  text NOT NULL,
    at       timestamptz NOT NULL
);
CREATE INDEX rate_limit_hits_subject_idx ON rate_limit_hits (bucket, subject, at);
