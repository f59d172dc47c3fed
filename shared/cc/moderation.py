"""Moderation writes on chat sessions: a mitra deactivated mid-session, staff force-end.

Both close sessions that their customer did not choose to close, so both run the same steps
in one Postgres transaction with their audit row (docs/control-center.md, "Moderating a
session"):
1. the session is closed by the session core (`sessions.store.close_*`: searching ->
   cancelled, pending_payment/active -> ended, its event and the system message both parties
   read);
2. its money is closed (`payments.service.close_for`): pending payments fail, the paid time
   not used is recorded as a refund due;
3. after the commit: the mitra's capacity into the mirror, the readers woken, both parties
   pushed `session_ended`, and the closed payments cancelled at the provider.

Staff reroute lives with the other reroute in shared.pairing (it blasts offers).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared import audit, availability
from shared.context import AppContext
from shared.db import Row, Tx
from shared.errors import Conflict, NotFound
from shared.payments import service as payments
from shared.sessions import effects, settle, states, store

MITRA_DEACTIVATED = "mitra_deactivated"
CLOSED_BY_SUPPORT = states.CLOSED_BY_SUPPORT
REASON_MAX = 500


def deactivate_mitra(ctx: AppContext, mitra_id: str, actor: str) -> dict[str, Any]:
    """Deactivate the mitra (shared.availability) and, in the same transaction, end every session it holds.

    Ended, not rerouted (docs/decisions.md): the customer is told at once, gets the unused paid
    time back as a refund due, and can request another mitra straight away.
    """
    with ctx.db.transaction() as tx:
        held = store.held_by_mitra(tx, mitra_id)
    settle.settle(ctx, held)  # an overdue session ends for its own reason first
    closed: list[Row] = []  # filled inside the deactivation's transaction, used after its commit
    closed_payments: list[Row] = []

    def end_held(tx: Tx, now: datetime) -> dict[str, Any]:
        ended = store.close_held_by_mitra(tx, mitra_id, actor, MITRA_DEACTIVATED, now)
        payments_closed, _ = payments.close_for(tx, ended, actor, MITRA_DEACTIVATED, now)
        closed[:], closed_payments[:] = ended, payments_closed
        return {"ended_chat_sessions": [str(r["id"]) for r in ended]}

    result = availability.deactivate(ctx, mitra_id, actor, also=end_held)
    effects.after_closed(ctx, closed, tell_customer=True)
    payments.cancel_at_provider(ctx, closed_payments)
    return result


def force_end(ctx: AppContext, session_id: str, actor: str, reason: str) -> dict[str, Any]:
    """Staff end an open session (end_reason closed_by_support; `reason` kept in its event and the audit log).

    404 SESSION_NOT_FOUND; 409 INVALID_TRANSITION (with current_status) when it is no longer open.
    """
    now = ctx.now()
    settle.settle_one(ctx, session_id, now)  # an overdue session ends for its own reason first
    with ctx.db.transaction() as tx:
        row = store.close_one(tx, session_id, actor, CLOSED_BY_SUPPORT, now, staff_reason=reason)
        if row is None:
            current = store.get(tx, session_id)
            if current is None:
                raise NotFound("chat session not found", code="SESSION_NOT_FOUND")
            raise Conflict(
                f"cannot end a session that is {current['status']}",
                code="INVALID_TRANSITION",
                current_status=current["status"],
            )
        closed_payments, owed = payments.close_for(tx, [row], actor, CLOSED_BY_SUPPORT, now)
        detail = {"reason": reason, "from_status": row["from_status"], "refund_due_idr": owed}
        audit.record(tx, actor, "chat_session.end", "chat_session", session_id, now, detail)
        view = store.to_json(row, store.offered_count(tx, session_id))
        tx.commit()
    effects.after_closed(ctx, [row], tell_customer=True)
    payments.cancel_at_provider(ctx, closed_payments)
    return view
