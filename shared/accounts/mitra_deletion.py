"""Mitra account deletion on request (DELETE /internal/mitras/:id, staff admins), by the rules of
customer deletion (shared.accounts.deletion; docs/auth.md, "Mitra deletion").

Mitras have no in-app deletion: they are onboarded by staff and ask staff to leave. In order,
each step safe to repeat, so a retry after a failure completes the deletion:

1. deactivate (`availability.deactivate`): inactive and offline in Postgres and the mirror, every
   session revoked through the revocation path, so no new offer or request reaches the mitra;
2. every chat session the mitra holds ends as the mitra ending it would end it (the steps of
   `pairing.end_by_mitra`, on the session core: reason `mitra_ended`, pending payments failed,
   the unused paid time owed back, the customer told neutrally);
3. one transaction under the mitra's row lock: device tokens deleted, the mitra-flow OTP rows of
   the phone deleted, the phone replaced by `deleted:<id>`, the display name replaced by "Deleted user",
   `deleted_at` set, one audit row (`mitra.delete`).

Kept: chat sessions, messages (the customer's transcript reads "Deleted user"), offers, status
logs and audit rows, which name no one once the row is anonymized.
"""

from __future__ import annotations

from typing import Any

from shared import audit, availability
from shared.anonymity import DELETED_NAME
from shared.availability.truth import CAPACITY_STATUSES
from shared.context import AppContext
from shared.errors import NotFound
from shared.payments import service as payments  # money rules: docs/payments.md
from shared.payments import store as payment_rows
from shared.sessions import effects, settle, store

END_REASON = "mitra_ended"  # what the customer sees: the same as any chat the mitra ended


def delete_mitra(ctx: AppContext, mitra_id: str, actor: str) -> dict[str, Any]:
    """Delete the mitra's account as above; what it ended. 404 MITRA_NOT_FOUND for an unknown id."""
    deactivated = availability.deactivate(ctx, mitra_id, actor)
    ended = _end_held_sessions(ctx, mitra_id, actor)
    now = ctx.now()
    with ctx.db.transaction() as tx:
        row = tx.one("SELECT phone_e164, deleted_at FROM mitras WHERE id = CAST(:id AS uuid) FOR UPDATE", id=mitra_id)
        if row is None:
            raise NotFound("no such mitra", code="MITRA_NOT_FOUND")
        if row["deleted_at"] is not None:  # a retry of a finished deletion
            return {"deleted": True, "revoked_sessions": 0, "ended_chat_sessions": len(ended), "deleted_devices": 0}
        removed = tx.execute(
            "DELETE FROM devices WHERE user_type = 'mitra' AND user_id = CAST(:id AS uuid)", id=mitra_id
        )
        tx.execute("DELETE FROM otp_requests WHERE phone_e164 = :p AND flow = 'mitra'", p=row["phone_e164"])
        tx.execute(
            # The column is NOT NULL UNIQUE: a tombstone no phone normalizes to takes the number's place.
            "UPDATE mitras SET phone_e164 = 'deleted:' || id, display_name = :name, deleted_at = :now,"
            " updated_at = :now"
            " WHERE id = CAST(:id AS uuid)",
            name=DELETED_NAME,
            now=now,
            id=mitra_id,
        )
        detail = {
            "revoked_sessions": deactivated["revoked_sessions"],
            "deleted_devices": removed,
            "ended_chat_sessions": ended,
        }
        audit.record(tx, actor, "mitra.delete", "mitra", mitra_id, now, detail)
        tx.commit()
    return {
        "deleted": True,
        "revoked_sessions": deactivated["revoked_sessions"],
        "ended_chat_sessions": len(ended),
        "deleted_devices": removed,
    }


def _end_held_sessions(ctx: AppContext, mitra_id: str, actor: str) -> list[str]:
    """End every session the mitra holds as the mitra ending it would; the ids ended now."""
    held = ctx.db.rows(
        "SELECT id FROM chat_sessions WHERE mitra_id = CAST(:m AS uuid) AND status = ANY(CAST(:s AS text[]))",
        m=mitra_id,
        s=list(CAPACITY_STATUSES),
    )
    ended = []
    for held_row in held:
        session_id = str(held_row["id"])
        now = ctx.now()
        settle.settle_one(ctx, session_id, now)  # an overdue session ends for its own reason first
        with ctx.db.transaction() as tx:
            row = store.finish(tx, session_id, CAPACITY_STATUSES, "ended", END_REASON, now)
            if row is None:  # ended meanwhile: nothing left to end
                continue
            store.record_event(tx, session_id, "ended", actor, now, {"reason": END_REASON})
            store.system_message(tx, session_id, "ended", now, end_reason=END_REASON)
            payment_rows.fail_pending(tx, session_id, actor, "session_ended", now)
            payments.refund_unused(tx, row, "mitra_ended_early", now)
            tx.commit()
        effects.wake_readers(ctx, session_id)
        effects.push(ctx, "customer", [row["customer_id"]], "session_ended", row, end_reason=END_REASON)
        ended.append(session_id)
    effects.recompute(ctx, [mitra_id])
    return ended
