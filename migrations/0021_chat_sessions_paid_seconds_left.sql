-- A paid session that is rerouted keeps the paid time it had left for the next mitra: the
-- seconds left are kept here while it searches again (NULL: not rerouted while active).
ALTER TABLE chat_sessions ADD COLUMN paid_seconds_left bigint;
