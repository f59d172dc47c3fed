-- A mitra's account is deleted on request like a customer's: the row stays (chat sessions,
-- offers and logs reference it) with `deleted_at` set and its phone replaced by a tombstone
-- that is no phone number (docs/auth.md, "Mitra deletion").
ALTER TABLE mitras ADD COLUMN deleted_at timestamptz;
