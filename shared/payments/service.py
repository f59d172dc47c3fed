"""Money rules of chat sessions: prices, the payment of a session and of each extension,
provider notifications, staff confirmation, and refunds due (docs/payments.md).

- Prices: `price_per_minute_idr` and `session_allowed_minutes` (app_config); a session's
  amount is fixed when it is requested, an extension's when it is asked for.
- A payment row is written in the same transaction as the transition that asks for it (accept,
  extend); the provider is called after the commit (no row lock held over HTTP), and its token
  and page are stored on the row.
- Paid time is paid for: a session becomes active, and an extension moves expires_at, only
  when its payment is settled `paid` (by the provider's verified status, or by staff).
- A payment settled paid that can no longer deliver its time (the session closed or moved on
  first) records a refund due instead of changing the session.

Every settlement is one transaction: the payment's conditional UPDATE (pending -> paid|failed)
and the session's, with their events; the caller answers only after it committed.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from shared import app_config
from shared.context import AppContext
from shared.db import Row, Tx
from shared.errors import ApiError, Conflict, NotFound, Unauthorized, ValidationFailed
from shared.payments import store
from shared.payments.gateway import provider
from shared.payments.midtrans import whole_idr
from shared.payments.provider import PaymentProviderError, Status
from shared.sessions import effects, settle
from shared.sessions import store as sessions
from shared.sessions.states import MAX_DURATION_MINUTES

log = logging.getLogger(__name__)

NOTIFICATION_ACTOR = "system:midtrans"


class PaymentNotFound(ApiError):
    status, code, default_message = 404, "PAYMENT_NOT_FOUND", "no payment has this order id"


# ---- prices ---------------------------------------------------------------------------------


def price_per_minute(tx: Tx) -> int:
    value = app_config.get_in(tx, "price_per_minute_idr")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return int(app_config.DEFAULTS["price_per_minute_idr"])  # type: ignore[arg-type]


def allowed_minutes(tx: Tx) -> list[int] | None:
    """The durations a session may be booked for; None (any duration in range) when the row is malformed."""
    value = app_config.get_in(tx, "session_allowed_minutes")
    if isinstance(value, list) and value and all(isinstance(v, int) and v > 0 for v in value):
        return sorted(value)
    return None


def amount_for(tx: Tx, minutes: int) -> int:
    """What `minutes` cost at today's price, in whole IDR."""
    return price_per_minute(tx) * minutes


def check_duration(tx: Tx, minutes: int) -> None:
    """400 VALIDATION_FAILED on duration_minutes when it is not one of the allowed durations."""
    allowed = allowed_minutes(tx)
    if allowed is not None and minutes not in allowed:
        raise ValidationFailed("duration_minutes", f"must be one of {allowed}")


# ---- asking for a payment -------------------------------------------------------------------


def open_for_session(ctx: AppContext, tx: Tx, session: Row, now: datetime) -> Row:
    """The accepted session's payment (its amount, due by its payment deadline), in the accept's transaction."""
    amount = session["amount_idr"] if session["amount_idr"] is not None else amount_for(tx, session["duration_minutes"])
    return store.insert(
        tx,
        str(session["id"]),
        "session",
        session["duration_minutes"],
        int(amount),
        provider(ctx).name,
        session["payment_deadline_at"],
        now,
    )


def open_for_extension(ctx: AppContext, tx: Tx, session: Row, minutes: int, now: datetime) -> Row:
    """A pending extension: due within the payment timeout, and never after the session ends."""
    deadline = min(now + timedelta(seconds=ctx.settings.payment_timeout_seconds), session["expires_at"])
    return store.insert(
        tx, str(session["id"]), "extension", minutes, amount_for(tx, minutes), provider(ctx).name, deadline, now
    )


def checkout(ctx: AppContext, payment: Row) -> None:
    """After the commit: create the payment at the provider and keep its token and page.

    A provider failure is logged and leaves the payment without a token (the customer's app
    shows the amount and deadline; staff can still confirm it); the deadline still applies.
    """
    try:
        created = provider(ctx).create(
            payment["order_id"], int(payment["amount_idr"]), payment["deadline_at"], ctx.now()
        )
    except PaymentProviderError:
        log.warning("payment creation failed", extra={"order_id": payment["order_id"]})
        return
    if created.token is None and created.redirect_url is None:
        return
    with ctx.db.transaction() as tx:
        store.set_checkout(tx, str(payment["id"]), created.token, created.redirect_url)
        tx.commit()


def view(tx: Tx, session_id: str, now: datetime) -> dict[str, Any] | None:
    """The customer's `payment`: the one waiting, else the latest; None before any was asked for.

    A payment still pending past its deadline can no longer be paid: it shows as `expired`.
    """
    row = store.pending_of(tx, session_id) or store.latest_of(tx, session_id)
    if row is None:
        return None
    status = "expired" if row["status"] == "pending" and row["deadline_at"] <= now else row["status"]
    return {
        "kind": row["kind"],
        "minutes": row["minutes"],
        "amount": row["amount_idr"],
        "status": status,
        "token": row["token"],
        "redirect_url": row["redirect_url"],
        "deadline": row["deadline_at"].isoformat(),
    }


# ---- settling a payment ---------------------------------------------------------------------


def settle_paid(tx: Tx, payment: Row, actor: str, now: datetime, reason: str | None, raw: str | None) -> Row | None:
    """pending -> paid, and deliver its time: the session becomes active, or the extension moves expires_at.

    Returns the changed session row, or None when nothing changed (already settled, or the
    session could no longer take the time: then a refund due is recorded for the payment).
    """
    settled = store.settle(tx, str(payment["id"]), "paid", actor, now, reason, raw)
    if settled is None:
        return None
    session_id = str(payment["session_id"])
    detail = {"order_id": payment["order_id"], "amount_idr": payment["amount_idr"], "reason": reason}
    if payment["kind"] == "session":
        row = sessions.confirm_payment(tx, session_id, now)
        if row is not None:
            sessions.record_event(tx, session_id, "payment_confirmed", actor, now, detail)
            sessions.system_message(tx, session_id, "active", now, expires_at=row["expires_at"])
    else:
        row = None
        if payment["deadline_at"] > now:  # an extension paid after its deadline delivers nothing
            row = sessions.extend(tx, session_id, int(payment["minutes"]), now, MAX_DURATION_MINUTES)
        if row is not None:
            extended = {**detail, "minutes": payment["minutes"], "expires_at": row["expires_at"].isoformat()}
            sessions.record_event(tx, session_id, "extended", actor, now, extended)
            sessions.system_message(
                tx, session_id, "extended", now, minutes=payment["minutes"], expires_at=row["expires_at"]
            )
    if row is None:
        store.record_refund(tx, session_id, int(payment["amount_idr"]), "paid_after_close", now, str(payment["id"]))
        sessions.record_event(tx, session_id, "refund_due", actor, now, {**detail, "why": "paid_after_close"})
    return row


def after_paid(ctx: AppContext, kind: str, row: Row) -> None:
    """After the commit: wake chat readers, mirror capacity, tell both parties."""
    effects.wake_readers(ctx, str(row["id"]))
    effects.recompute(ctx, [row["mitra_id"]])
    expires = row["expires_at"].isoformat()
    push = "session_active" if kind == "session" else "session_extended"
    effects.push(ctx, "customer", [row["customer_id"]], push, row, expires_at=expires)
    effects.push(ctx, "mitra", [row["mitra_id"]], push, row, expires_at=expires)


def refund_unused(tx: Tx, row: Row, reason: str, now: datetime) -> int:
    """A paid session ended early through no fault of the customer: its unused time is owed back.

    The unused share of what the customer paid (session and paid extensions), pro rata to the
    seconds left of the paid time, rounded down to whole IDR. The time left is counted to
    `expires_at` while a mitra held it, or is the `paid_seconds_left` a reroute kept while it
    searched for the next one. The amount recorded (0: nothing was owed).
    """
    if row["paid_at"] is None:
        return 0
    if row["expires_at"] is not None:
        left = (row["expires_at"] - now).total_seconds()
    else:
        left = float(row["paid_seconds_left"] or 0)
    if left <= 0:
        return 0
    paid = int(
        tx.scalar(
            "SELECT coalesce(sum(amount_idr), 0) FROM payments WHERE session_id = CAST(:s AS uuid) AND status = 'paid'",
            s=str(row["id"]),
        )
        or 0
    )
    total = row["duration_minutes"] * 60
    amount = int(paid * min(left, total) // total) if total else 0
    return amount if store.record_refund(tx, str(row["id"]), amount, reason, now) else 0


def close_for(tx: Tx, closed: list[Row], actor: str, reason: str, now: datetime) -> tuple[list[Row], int]:
    """Sessions just closed by a block, a deletion, a deactivation or staff: their money closed in the same transaction.

    Every payment still pending is closed (`failed` with `reason`), and the paid time not used
    is owed back (`refund_unused`, reason `reason`; docs/payments.md, "Closing a session's
    money"). Returns the closed payments (order_id, provider), to pass to `cancel_at_provider`
    once the caller has committed, and the total now owed back.
    """
    cancelled: list[Row] = []
    owed = 0
    for row in closed:
        cancelled.extend(store.fail_pending(tx, str(row["id"]), actor, reason, now))
        owed += refund_unused(tx, row, reason, now)
    return cancelled, owed


def cancel_at_provider(ctx: AppContext, closed_payments: list[Row]) -> None:
    """After the commit: make payments we closed no longer payable at the provider, best-effort.

    A payment the provider would not cancel, or could not be asked about, stays closed here;
    should the customer still pay it, its notification records the whole amount as a refund
    due (`paid_after_close`), and never revives the session.
    """
    gateway = provider(ctx)
    for payment in closed_payments:
        if payment["provider"] != gateway.name:
            continue
        try:
            if not gateway.cancel(str(payment["order_id"])):
                log.info("payment not cancellable at the provider", extra={"order_id": payment["order_id"]})
        except PaymentProviderError:
            log.warning("payment cancel failed", extra={"order_id": payment["order_id"]})


# ---- provider notifications -----------------------------------------------------------------


def handle_notification(ctx: AppContext, body: dict[str, Any]) -> dict[str, Any]:
    """A provider's notification: verify, re-read the status from the provider, act once, then answer.

    The notification only names the order: the outcome comes from the provider's status API,
    and the amount must be the payment's both there and in the notification. Repeats and
    out-of-order deliveries change nothing (the payment moves out of `pending` once); a status
    that disagrees with the notification, an amount that is not the payment's, and a session
    past its deadline change nothing either.
    """
    gateway = provider(ctx)
    if not gateway.verify_notification(body):
        raise Unauthorized("the notification signature does not verify", code="INVALID_SIGNATURE", headers={})
    order_id = str(body["order_id"])
    with ctx.db.transaction() as tx:
        payment = store.by_order(tx, order_id)
    if payment is None:
        raise PaymentNotFound()
    status = gateway.status(order_id)  # the provider's own answer; the notification only says "look"
    if status.outcome is not None and whole_idr(body.get("gross_amount")) != int(payment["amount_idr"]):
        log.warning("payment amount mismatch", extra={"order_id": order_id})
        return {"order_id": order_id, "result": "amount_mismatch", "status": payment["status"]}
    return _apply(ctx, payment, status, NOTIFICATION_ACTOR)


def _apply(ctx: AppContext, payment: Row, status: Status, actor: str) -> dict[str, Any]:
    """Act once on the provider's status of a payment; the answer after the commit."""
    order_id = str(payment["order_id"])
    now = ctx.now()
    if status.outcome is None:
        return {"order_id": order_id, "result": "ignored", "status": payment["status"]}
    if status.gross_amount != int(payment["amount_idr"]):
        log.warning("payment amount mismatch", extra={"order_id": order_id})
        return {"order_id": order_id, "result": "amount_mismatch", "status": payment["status"]}
    if status.outcome == "paid":
        settle.settle_one(ctx, str(payment["session_id"]), now)  # the session settled to its deadline first
    with ctx.db.transaction() as tx:
        # Locks in the order every transition takes them: the session row, then its payments.
        sessions.get(tx, str(payment["session_id"]), lock=True)
        current = store.by_order(tx, order_id, lock=True)
        assert current is not None
        row = None
        if current["status"] != "pending":
            if status.outcome == "paid" and current["status"] == "failed":  # closed here, yet paid there
                store.record_refund(
                    tx,
                    str(current["session_id"]),
                    int(current["amount_idr"]),
                    "paid_after_close",
                    now,
                    str(current["id"]),
                )
            result = "unchanged"
        elif status.outcome == "failed":
            store.settle(tx, str(current["id"]), "failed", actor, now, None, status.raw_status)
            result = "failed"
        else:
            row = settle_paid(tx, current, actor, now, None, status.raw_status)
            result = "paid" if row is not None else "refund_due"
        settled = store.by_order(tx, order_id)
        tx.commit()
    if row is not None:
        after_paid(ctx, current["kind"], row)
    assert settled is not None
    return {"order_id": order_id, "result": result, "status": settled["status"]}


RECONCILE_AHEAD_SECONDS = 60  # pending payments this close to their deadline are asked about
RECONCILE_BEHIND_SECONDS = 600  # and those past it this recently (a settlement whose notification was lost)
RECONCILE_BATCH = 100
RECONCILE_ACTOR = "system:payment-reconciliation"


def reconcile_pending(ctx: AppContext) -> dict[str, int]:
    """The session-expiry sweep's reconciliation: ask the provider about payments still pending near their deadline.

    A notification Midtrans could not deliver (or we could not take) must not cost a customer
    who paid: before the sweep expires unpaid sessions, each pending payment of this provider
    whose deadline is within RECONCILE_AHEAD_SECONDS (or passed in the last
    RECONCILE_BEHIND_SECONDS) is read from the status API and applied like a notification.
    A provider failure skips that payment until the next pass. Counts per result.
    """
    gateway = provider(ctx)
    if gateway.name == "manual":
        return {}
    now = ctx.now()
    with ctx.db.transaction() as tx:
        due = store.pending_near_deadline(
            tx,
            gateway.name,
            now - timedelta(seconds=RECONCILE_BEHIND_SECONDS),
            now + timedelta(seconds=RECONCILE_AHEAD_SECONDS),
            RECONCILE_BATCH,
        )
    counts: dict[str, int] = {}
    for payment in due:
        try:
            result = _apply(ctx, payment, gateway.status(str(payment["order_id"])), RECONCILE_ACTOR)["result"]
        except PaymentProviderError:
            result = "provider_error"
        counts[result] = counts.get(result, 0) + 1
    return counts


# ---- staff ----------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _refund_json(row: Row) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "payment_id": str(row["payment_id"]) if row["payment_id"] else None,
        "amount_idr": int(row["amount_idr"]),
        "reason": row["reason"],
        "created_at": _iso(row["created_at"]),
        "refunded_at": _iso(row["refunded_at"]),
        "refunded_by": row["refunded_by"],
    }


def money_of(ctx: AppContext, session_id: str) -> dict[str, Any]:
    """Staff view of a session's money: every payment asked, and every refund due."""
    with ctx.db.transaction() as tx:
        if sessions.get(tx, session_id) is None:
            raise NotFound("chat session not found", code="SESSION_NOT_FOUND")
        paid = store.payments_of(tx, session_id)
        refunds = store.refunds_of(tx, session_id)
    return {
        "session_id": session_id,
        "payments": [
            {
                "id": str(p["id"]),
                "kind": p["kind"],
                "order_id": p["order_id"],
                "provider": p["provider"],
                "minutes": int(p["minutes"]),
                "amount_idr": int(p["amount_idr"]),
                "status": p["status"],
                "deadline_at": _iso(p["deadline_at"]),
                "created_at": _iso(p["created_at"]),
                "settled_at": _iso(p["settled_at"]),
                "settled_by": p["settled_by"],
                "reason": p["reason"],
            }
            for p in paid
        ],
        "refunds": [_refund_json(r) for r in refunds],
        "refund_due_idr": sum(int(r["amount_idr"]) for r in refunds if r["refunded_at"] is None),
    }


def mark_refunded(ctx: AppContext, actor: str, session_id: str, refund_id: str) -> dict[str, Any]:
    """Staff record that a refund due was paid back (once: a repeat is 409 ALREADY_REFUNDED)."""
    with ctx.db.transaction() as tx:
        if sessions.get(tx, session_id) is None:
            raise NotFound("chat session not found", code="SESSION_NOT_FOUND")
        if store.mark_refunded(tx, session_id, refund_id, actor, ctx.now()) is None:
            known = {str(r["id"]): r for r in store.refunds_of(tx, session_id)}
            if refund_id not in known:
                raise NotFound("this session has no such refund", code="REFUND_NOT_FOUND")
            raise Conflict("this refund is already marked refunded", code="ALREADY_REFUNDED")
        tx.commit()
    return money_of(ctx, session_id)
