-- migrate: no-transaction
-- Fills `search_text` (0035) in the rows written before its trigger, 5,000 rows per commit in
-- primary-key order, so no row stays locked for long and a sign-in or a profile edit waits at
-- most for one batch. It sets what the trigger would (the trigger runs on this update too).
-- Run again after a failure, it goes over the rows still empty.
DO $$
DECLARE
    done uuid := '00000000-0000-0000-0000-000000000000';
    upto uuid;
BEGIN
    LOOP
        SELECT id INTO upto FROM customers WHERE id > done ORDER BY id OFFSET 4999 LIMIT 1;
        UPDATE customers SET search_text = customers_search_text(display_name, email)
            WHERE id > done AND (upto IS NULL OR id <= upto) AND search_text IS NULL;
        COMMIT;
        EXIT WHEN upto IS NULL;
        done := upto;
    END LOOP;
END
$$;
