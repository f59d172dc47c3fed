-- Each session carries the amount its booked minutes cost when it was requested, so a later
-- price change never changes what a customer was asked to pay. Nullable: older rows have none.
ALTER TABLE chat_sessions ADD COLUMN amount_idr bigint;
