"""Customer account deletion (DELETE /api/client/auth/me), as the app stores require it.

App Store Review Guideline 5.1.1(v) and Google Play's account-deletion policy ask that a user
can delete their account in the app. One transaction, under the customer's row lock:

1. every session is revoked (`revocation.take_access_away`), every device token deleted;
2. every open chat session is closed through the session core with the reason an ordinary
   end by the customer has (`customer_ended`): the mitra is told nothing about the deletion;
   its pending payments are closed and its paid time not used owed back (reason
   `account_deleted`, docs/payments.md);
3. the Apple refresh token, if any, is queued for revocation (unlinked from the customer);
4. personal data is erased: phone, email, Google and Apple subjects, the relay flags; the
   display name becomes "Deleted user"; `deleted_at` is set; the customer's OTP rows go;
5. one audit row (`customer.delete`, actor `customer:<id>`) records what was done.

After the commit the mitras are told (the session core's after-commit effects), the closed
payments are cancelled at the payment provider, and the Apple token is
revoked at once; a failure there is retried by the sweep and never undoes the deletion. What is
kept, and why: docs/auth.md ("Account deletion").
"""

from __future__ import annotations

from shared import audit
from shared.anonymity import DELETED_NAME
from shared.auth import apple_tokens, revocation
from shared.context import AppContext
from shared.errors import Unauthorized
from shared.payments import service as payments
from shared.sessions import effects, settle, store

REASON = "account_deleted"
CHAT_END_REASON = "customer_ended"  # what the mitra sees: the same as any chat the customer ended


def delete_customer(
    ctx: AppContext, customer_id: str, *, actor: str | None = None, apple_gone: bool = False
) -> dict[str, int]:
    """Delete the customer's account as above; the counts of what it ended.

    `apple_gone`: Apple already ended the authorization (its account-delete or consent-revoked
    notification), so the kept token is dropped instead of revoked. 401 TOKEN_INVALID when the
    account does not exist or is already deleted.
    """
    with ctx.db.transaction() as tx:
        open_row = store.open_session_of(tx, customer_id)
    if open_row is not None:
        settle.settle(ctx, [open_row])  # an overdue session ends for its own reason first
    now = ctx.now()
    actor = actor or f"customer:{customer_id}"
    with ctx.db.transaction() as tx:
        row = tx.one(
            "SELECT phone_e164, deleted_at FROM customers WHERE id = CAST(:id AS uuid) FOR UPDATE", id=customer_id
        )
        if row is None or row["deleted_at"] is not None:
            raise Unauthorized("the customer of this token no longer exists", code="TOKEN_INVALID")
        revoked = revocation.take_access_away(ctx, tx, reason=REASON, user_type="customer", user_id=customer_id)
        devices = tx.execute(
            "DELETE FROM devices WHERE user_type = 'customer' AND user_id = CAST(:id AS uuid)", id=customer_id
        )
        closed = store.close_open_of_customer(tx, customer_id, actor, CHAT_END_REASON, now)
        # Money (docs/payments.md, "Closing"): nothing stays payable, unused paid time is owed back.
        closed_payments, owed = payments.close_for(tx, closed, actor, REASON, now)
        if apple_gone:
            apple_tokens.forget(tx, customer_id)
        apple_queued = None if apple_gone else apple_tokens.queue_revocation(tx, customer_id, now)
        if row["phone_e164"] is not None:
            tx.execute("DELETE FROM otp_requests WHERE phone_e164 = :p AND flow = 'customer'", p=row["phone_e164"])
        tx.execute(
            "UPDATE customers SET display_name = :name, phone_e164 = NULL, email = NULL, google_sub = NULL,"
            " apple_sub = NULL, email_private_relay = false, email_forwarding_disabled_at = NULL,"
            " is_anonymous = false, deleted_at = :now, updated_at = :now WHERE id = CAST(:id AS uuid)",
            name=DELETED_NAME,
            now=now,
            id=customer_id,
        )
        detail = {
            "revoked_sessions": len(revoked),
            "deleted_devices": devices,
            "ended_chat_sessions": [str(r["id"]) for r in closed],
            "apple_token_queued": apple_queued is not None,
            "refund_due_idr": owed,
        }
        audit.record(tx, actor, "customer.delete", "customer", customer_id, now, detail)
        tx.commit()
    effects.after_closed(ctx, closed)
    payments.cancel_at_provider(ctx, closed_payments)
    if apple_queued is not None:
        apple_tokens.revoke_due(ctx, only=apple_queued)
    return {"revoked_sessions": len(revoked), "ended_chat_sessions": len(closed)}
