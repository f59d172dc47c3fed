-- The auth session that registered each push token, so a logout removes the token of the device
-- it signs out even when the app does not name it. Nullable: tokens registered before this
-- release, and the previous release's inserts, carry none (docs/push.md, "Devices").
ALTER TABLE devices ADD COLUMN session_id uuid;
