"""Chat-session transitions (docs/pairing.md): request, accept/decline, payment, extend, end, reroute, cancel.

Every transition follows one shape: one Postgres transaction that applies a conditional
UPDATE (the state machine is enforced by `WHERE status = ...`, so concurrent requests cannot
both win), writes its offers and a `chat_session_events` row, and commits; then, after the
commit, the mirror (`recompute_capacity` of each affected mitra, derived from Postgres) and
the pushes. Choosing mitras to blast reads the availability mirror (no Postgres statement
while Valkey is healthy).

Deadlines are exact: each read and transition first settles the session (`settle.settle`),
so one past its pairing, payment or end deadline is already expired/ended when it is shown or
changed. Too late is a clear 409: accepting (or declining) after the pairing deadline is
SESSION_EXPIRED, paying after the payment deadline PAYMENT_DEADLINE_PASSED, extending after
the end SESSION_EXPIRED.

State machine (anything else is 409 INVALID_TRANSITION with `current_status`):
    searching       -> pending_payment (accept; active if already paid) | cancelled | expired
    pending_payment -> active (payment) | ended (end) | searching (reroute) | expired
    active          -> ended (end, expiry) | searching (reroute; stays paid)
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from pg8000.exceptions import DatabaseError

from shared import app_config, audit, availability, ratelimit
from shared.auth.principal import Principal
from shared.context import AppContext
from shared.db import Row, Tx, is_unique_violation
from shared.errors import Conflict, Forbidden, NotFound, ValidationFailed
from shared.pairing import store as offers
from shared.payments import service as payments  # money rules: docs/payments.md
from shared.payments import store as payment_rows
from shared.sessions import effects, settle, states, store
from shared.sessions.states import MAX_DURATION_MINUTES as MAX_DURATION_MINUTES  # re-exported (entry points)

log = logging.getLogger(__name__)

MIN_DURATION_MINUTES = 1
MAX_EXTEND_MINUTES = 240


def _actor(principal: Principal) -> str:
    return f"{principal.user_type}:{principal.user_id}"


def _not_found() -> NotFound:
    return NotFound("chat session not found", code="SESSION_NOT_FOUND")


def _invalid(current: Row | None, action: str) -> Conflict:
    status = current["status"] if current else None
    too_late = _TOO_LATE.get(action, {}).get((current["status"], current["end_reason"])) if current else None
    if too_late and current is not None:
        return Conflict(
            f"too late to {action} this session: its deadline has passed",
            code=too_late,
            current_status=status,
            end_reason=current["end_reason"],
        )
    return Conflict(f"cannot {action} a session that is {status}", code="INVALID_TRANSITION", current_status=status)


# action -> (status, end_reason) left by a passed deadline -> the 409 code saying so.
_TOO_LATE: dict[str, dict[tuple[str, str], str]] = {
    "accept": {("expired", "pairing_timeout"): "SESSION_EXPIRED"},
    "decline": {("expired", "pairing_timeout"): "SESSION_EXPIRED"},
    "confirm payment of": {("expired", "payment_timeout"): "PAYMENT_DEADLINE_PASSED"},
    "extend": {("ended", "expired"): "SESSION_EXPIRED"},
}


def _view(tx: Tx, row: Row) -> dict[str, Any]:
    return store.to_json(row, store.offered_count(tx, str(row["id"])))


def _owned(tx: Tx, principal: Principal, session_id: str) -> Row:
    """The customer's own session; other customers' ids are indistinguishable from unknown ones."""
    row = store.get(tx, session_id)
    if row is None or str(row["customer_id"]) != principal.user_id:
        raise _not_found()
    return row


def _push_offers(ctx: AppContext, row: Row, mitra_ids: list[str]) -> None:
    deadline = row["search_started_at"] + timedelta(seconds=ctx.settings.pairing_timeout_seconds)
    effects.push(
        ctx,
        "mitra",
        list(mitra_ids),
        "pairing_offer",
        row,
        duration_minutes=row["duration_minutes"],
        offer_expires_at=deadline.isoformat(),
    )


# ---- customer --------------------------------------------------------------------------------


def beacon(ctx: AppContext) -> dict[str, Any]:
    """{available, as_of}: the shared 10 s snapshot (Postgres only when the mirror cannot answer)."""
    found = availability.count_available(ctx)
    return {"available": found["available"], "as_of": found["as_of"]}


def request_session(ctx: AppContext, principal: Principal, duration_minutes: int | None) -> dict[str, Any]:
    """Create a searching session and blast it to up to PAIRING_BLAST_SIZE available mitras."""
    customer_id = principal.user_id
    per_hour, cooldown = _request_limits(ctx)
    if cooldown is not None:
        ratelimit.require_room(ctx, cooldown, customer_id, "a new request must wait a moment after a cancel")
    ratelimit.require_room(ctx, per_hour, customer_id, "too many chat requests, try again later")
    with ctx.db.transaction() as tx:
        existing = store.open_session_of(tx, customer_id)
        default = int(app_config.get_in(tx, "session_default_minutes"))
    if existing is not None and settle.settle(ctx, [existing]):
        with ctx.db.transaction() as tx:  # the open session was overdue: it is closed now
            existing = store.open_session_of(tx, customer_id)
    if existing is not None:
        raise _already_open(existing)
    duration = duration_minutes or default
    with ctx.db.transaction() as tx:  # money rule: an allowed duration, and its amount at today's price
        payments.check_duration(tx, duration)
        amount = payments.amount_for(tx, duration)
    picked = availability.find_available_mitras(ctx, ctx.settings.pairing_blast_size)
    if not picked:
        raise Conflict("no mitra is available right now", code="NO_MITRA_AVAILABLE")
    now = ctx.now()
    try:
        with ctx.db.transaction() as tx:
            row = store.insert_session(tx, customer_id, duration, now, amount)
            session_id = str(row["id"])
            offers.insert_offers(tx, session_id, picked, now)
            store.record_event(tx, session_id, "requested", _actor(principal), now, {"duration_minutes": duration})
            store.record_event(tx, session_id, "offered", "system", now, {"mitras": len(picked), "round": 1})
            store.feed_session(tx, session_id, "requested", now)
            view = _view(tx, row)
            tx.commit()
    except DatabaseError as exc:
        if not is_unique_violation(exc, store.ONE_OPEN_PER_CUSTOMER):
            raise
        with ctx.db.transaction() as tx:  # a concurrent request of the same customer won
            raise _already_open(store.open_session_of(tx, customer_id)) from None
    ratelimit.record(ctx, per_hour, customer_id)  # one open session at a time: no race past the peek
    _push_offers(ctx, row, picked)
    return view


def _request_limits(ctx: AppContext) -> tuple[ratelimit.Limit, ratelimit.Limit | None]:
    """(sessions created per customer per hour, the cooldown a cancel starts, None when 0 s); docs/pairing.md."""
    cfg = app_config.get_all(ctx)
    per_hour = ratelimit.Limit("session_request", int(cfg["session_requests_per_customer_per_hour"]), 3600)
    seconds = int(cfg["session_cancel_cooldown_seconds"])
    return per_hour, ratelimit.Limit("session_cancel", 1, seconds, "CANCEL_COOLDOWN") if seconds else None


def _already_open(row: Row | None) -> Conflict:
    return Conflict(
        "the customer already has an open chat session",
        code="SESSION_ALREADY_OPEN",
        session_id=str(row["id"]) if row else None,
        current_status=row["status"] if row else None,
    )


def _customer_view(tx: Tx, row: Row, now: datetime) -> dict[str, Any]:
    """The session as its customer sees it: its mitra (as in its lists) and the payment asked (docs/payments.md)."""
    return {
        **_view(tx, row),
        "mitra": offers.mitra_brief(tx, row["mitra_id"]),
        "payment": payments.view(tx, str(row["id"]), now),
    }


def get_session(ctx: AppContext, principal: Principal, session_id: str) -> dict[str, Any]:
    """The customer's own session (settled first: never shown live past its deadline)."""
    with ctx.db.transaction() as tx:
        row = _owned(tx, principal, session_id)
        view = _customer_view(tx, row, ctx.now())
    if not settle.settle(ctx, [row]):
        return view
    with ctx.db.transaction() as tx:
        return _customer_view(tx, _owned(tx, principal, session_id), ctx.now())


def cancel(ctx: AppContext, principal: Principal, session_id: str) -> dict[str, Any]:
    """searching -> cancelled; the offered mitras are told the offer is gone."""
    now = ctx.now()
    settle.settle_one(ctx, session_id, now)
    with ctx.db.transaction() as tx:
        _owned(tx, principal, session_id)
        row = store.finish(tx, session_id, ("searching",), "cancelled", "customer_cancelled", now)
        if row is None:
            raise _invalid(store.get(tx, session_id), "cancel")
        lost = store.close_offers(tx, session_id, now)
        store.record_event(tx, session_id, "cancelled", _actor(principal), now)
        store.system_message(tx, session_id, "cancelled", now)
        view = _view(tx, row)
        tx.commit()
    cooldown = _request_limits(ctx)[1]
    if cooldown is not None:
        ratelimit.record(ctx, cooldown, principal.user_id)
    effects.wake_readers(ctx, session_id)
    effects.push(ctx, "mitra", list(lost), "offer_closed", row)
    return view


def extend(ctx: AppContext, principal: Principal, session_id: str, minutes: int) -> dict[str, Any]:
    """active -> active with a pending extension of `minutes`: its own payment and deadline.

    Money rule (docs/payments.md): expires_at moves only when the extension is paid
    (shared.payments.service.settle_paid); one extension waits for payment at a time.
    """
    now = ctx.now()
    settle.settle_one(ctx, session_id, now)
    with ctx.db.transaction() as tx:
        current = _owned(tx, principal, session_id)
        if current["status"] != "active" or current["expires_at"] <= now:
            raise _invalid(current, "extend")
        if current["duration_minutes"] + minutes > MAX_DURATION_MINUTES:
            raise ValidationFailed("minutes", f"a session lasts at most {MAX_DURATION_MINUTES} minutes in total")
        payment_rows.fail_overdue(tx, session_id, now)
        if payment_rows.pending_of(tx, session_id) is not None:
            raise Conflict("an extension is already waiting for payment", code="EXTENSION_PENDING")
        payment = payments.open_for_extension(ctx, tx, current, minutes, now)
        detail = {"minutes": minutes, "amount_idr": payment["amount_idr"], "order_id": payment["order_id"]}
        store.record_event(tx, session_id, "extension_requested", _actor(principal), now, detail)
        tx.commit()
    payments.checkout(ctx, payment)
    with ctx.db.transaction() as tx:
        return _customer_view(tx, _owned(tx, principal, session_id), now)


def end_by_customer(ctx: AppContext, principal: Principal, session_id: str) -> dict[str, Any]:
    """pending_payment/active -> ended by the customer."""
    return _end(ctx, principal, session_id, "customer_ended", "customer_id", notify="mitra")


def _end(
    ctx: AppContext, principal: Principal, session_id: str, reason: str, party: str, notify: str
) -> dict[str, Any]:
    """End a held session on behalf of `party` (the row's customer_id or mitra_id); push the other side."""
    now = ctx.now()
    settle.settle_one(ctx, session_id, now)
    with ctx.db.transaction() as tx:
        current = store.get(tx, session_id)
        if current is None or str(current[party]) != principal.user_id:
            raise _not_found()  # other users' sessions are indistinguishable from unknown ones
        row = store.finish(tx, session_id, states.CAPACITY_STATUSES, "ended", reason, now)
        if row is None:
            raise _invalid(store.get(tx, session_id), "end")
        store.record_event(tx, session_id, "ended", _actor(principal), now, {"reason": reason})
        store.system_message(tx, session_id, "ended", now, end_reason=reason)
        # Money rules (docs/payments.md): nothing stays payable on an ended session, and a paid
        # session the mitra ends early owes the customer its unused time.
        closed_payments = payment_rows.fail_pending(tx, session_id, _actor(principal), "session_ended", now)
        if reason == "mitra_ended":
            payments.refund_unused(tx, row, "mitra_ended_early", now)
        view = _view(tx, row)
        tx.commit()
    effects.wake_readers(ctx, session_id)
    effects.recompute(ctx, [row["mitra_id"]])
    effects.push(ctx, notify, [row[f"{notify}_id"]], "session_ended", row, end_reason=reason)
    payments.cancel_at_provider(ctx, closed_payments)
    return view


def reroute(ctx: AppContext, principal: Principal, session_id: str) -> dict[str, Any]:
    """pending_payment/active -> searching again without the current mitra, re-blasted.

    When no other mitra is available the session is left exactly as it was (the current
    mitra keeps it) and the answer is 409 NO_MITRA_AVAILABLE.
    """
    return _reroute(ctx, principal, session_id)


def reroute_by_staff(ctx: AppContext, principal: Principal, session_id: str, reason: str) -> dict[str, Any]:
    """Staff reroute any held session (docs/control-center.md, "Moderating a session").

    The customer's reroute, on any customer's session, with a `chat_session.reroute` audit row
    (the staff's reason, the previous mitra, the paid seconds kept) in the same transaction,
    and the customer pushed too (they did not ask for it).
    """
    return _reroute(ctx, principal, session_id, staff_reason=reason)


def _reroute(ctx: AppContext, principal: Principal, session_id: str, staff_reason: str | None = None) -> dict[str, Any]:
    settle.settle_one(ctx, session_id)
    with ctx.db.transaction() as tx:
        if staff_reason is None:
            current = _owned(tx, principal, session_id)
        else:  # staff: any customer's session
            found = store.get(tx, session_id)
            if found is None:
                raise _not_found()
            current = found
        if states.next_status("reroute", current["status"]) is None:
            raise _invalid(current, "reroute")
        previous = str(current["mitra_id"])
        exclude = [*offers.reblast_exclusions(tx, session_id), previous]
    picked = availability.find_available_mitras(ctx, ctx.settings.pairing_blast_size, exclude)
    if not picked:
        raise Conflict(
            "no other mitra is available right now", code="NO_MITRA_AVAILABLE", current_status=current["status"]
        )
    now = ctx.now()
    actor = _actor(principal)
    with ctx.db.transaction() as tx:
        row = store.reroute(tx, session_id, current["status"], previous, now)
        if row is None:
            raise _invalid(store.get(tx, session_id), "reroute")
        offers.insert_offers(tx, session_id, picked, now)
        # Money rule (docs/payments.md): a payment asked while the previous mitra held it is closed.
        closed_payments = payment_rows.fail_pending(tx, session_id, actor, "rerouted", now)
        detail = {"previous_mitra_id": previous, "from_status": current["status"]}
        if staff_reason is not None:
            detail["reason"] = staff_reason
            kept = {**detail, "paid_seconds_left": row["paid_seconds_left"]}
            audit.record(tx, actor, "chat_session.reroute", "chat_session", session_id, now, kept)
        store.record_event(tx, session_id, "rerouted", actor, now, detail)
        store.record_event(tx, session_id, "offered", "system", now, {"mitras": len(picked), "reason": "reroute"})
        store.system_message(tx, session_id, "rerouted", now)
        store.feed_session(tx, session_id, "rerouted", now, also_mitras=[previous], customer=False)
        view = _view(tx, row)
        tx.commit()
    effects.wake_readers(ctx, session_id)
    effects.recompute(ctx, [previous])
    effects.push(ctx, "mitra", [previous], "session_rerouted", row)
    if staff_reason is not None:
        effects.push(ctx, "customer", [row["customer_id"]], "session_rerouted", row)
    _push_offers(ctx, row, picked)
    payments.cancel_at_provider(ctx, closed_payments)
    return view


# ---- mitra -----------------------------------------------------------------------------------


def _offer_of(tx: Tx, principal: Principal, session_id: str, *, lock: bool = False) -> tuple[Row, str | None]:
    """The session and this mitra's offer response; 404 unknown session, 403 NOT_OFFERED.

    The offer is read before the session: under READ COMMITTED each statement has its own
    snapshot, and in this order an offer already closed as `lost` (another mitra won) is never
    paired with a session that still looks `searching`, so a loser always hears ALREADY_TAKEN.
    """
    offered, response = offers.offer_response(tx, session_id, principal.user_id)
    row = store.get(tx, session_id, lock=lock)
    if row is None:
        raise _not_found()
    if not offered:
        raise Forbidden("this session was not offered to you", code="NOT_OFFERED")
    return row, response


def _taken_or_invalid(row: Row | None, action: str, me: str) -> Conflict:  # accept / decline
    if row is not None and row["status"] in states.CAPACITY_STATUSES and str(row["mitra_id"]) != me:
        return Conflict("another mitra accepted this session", code="ALREADY_TAKEN", current_status=row["status"])
    return _invalid(row, action)


def accept(ctx: AppContext, principal: Principal, session_id: str) -> dict[str, Any]:
    """searching -> pending_payment for exactly one offered mitra under capacity.

    Postgres arbitrates: the mitra row is locked before its open sessions are counted (so one
    mitra's concurrent accepts of different sessions serialize), and the session moves by a
    conditional UPDATE (so one of many mitras accepting one session wins).
    """
    me = principal.user_id
    now = ctx.now()
    settle.settle_one(ctx, session_id, now)
    deadline = now + timedelta(seconds=ctx.settings.payment_timeout_seconds)
    with ctx.db.transaction() as tx:
        row, response = _offer_of(tx, principal, session_id)
        if str(row["mitra_id"]) == me and row["status"] in states.CAPACITY_STATUSES:
            return _view(tx, row)  # a retried accept that already won
        if states.next_status("accept", row["status"]) is None:
            raise _taken_or_invalid(row, "accept", me)
        if response == "declined":
            raise Conflict("you declined this session", code="OFFER_DECLINED", current_status=row["status"])
        if response is not None:  # lost a race, or held it before a reroute: only open offers count
            raise Conflict("your offer for this session is closed", code="OFFER_CLOSED", current_status=row["status"])
        capacity = offers.lock_mitra_capacity(tx, me)
        if capacity is None or not capacity["is_active"]:
            raise Forbidden("this mitra account is deactivated", code="ACCOUNT_INACTIVE")
        if not capacity["has_room"]:
            raise Conflict(
                "you are at your concurrent session limit",
                code="AT_CAPACITY",
                used=capacity["used"],
                max=capacity["max"],
            )
        won = store.accept(tx, session_id, me, now, deadline)
        if won is None:
            raise _taken_or_invalid(store.get(tx, session_id), "accept", me)
        lost = store.close_offers(tx, session_id, now, winner=me)
        store.record_event(tx, session_id, "accepted", _actor(principal), now, {"status": won["status"]})
        store.system_message(tx, session_id, "accepted", now, payment_deadline_at=won["payment_deadline_at"])
        if won["status"] == "active":  # a rerouted paid session starts at once
            store.system_message(tx, session_id, "active", now, expires_at=won["expires_at"])
        # Money rule (docs/payments.md): the payment is asked for with the accept, created at the
        # provider after the commit.
        payment = payments.open_for_session(ctx, tx, won, now) if won["status"] == "pending_payment" else None
        view = _view(tx, won)
        tx.commit()
    if payment is not None:
        payments.checkout(ctx, payment)
    effects.wake_readers(ctx, session_id)
    effects.recompute(ctx, [me])
    extra = {
        "mitra_id": me,
        "payment_deadline_at": deadline.isoformat() if won["status"] == "pending_payment" else None,
    }
    effects.push(ctx, "customer", [won["customer_id"]], "session_accepted", won, **extra)
    effects.push(ctx, "mitra", lost, "offer_closed", won)
    return view


def decline(ctx: AppContext, principal: Principal, session_id: str) -> dict[str, Any]:
    """Record a decline; when every offer is declined, re-blast to new mitras (or expire).

    No row lock is held while mitras are picked (a Valkey call, or a Postgres fallback and
    perhaps a reseed): the decline commits first, the pick runs with no transaction open,
    and the re-blast (or expiry) is a second transaction that re-checks, under the session's
    row lock, that the session still waits with every offer answered.
    """
    now = ctx.now()
    settle.settle_one(ctx, session_id, now)
    with ctx.db.transaction() as tx:
        # The session row lock serializes declines of one session, so the last one sees it is last.
        row, response = _offer_of(tx, principal, session_id, lock=True)
        if states.next_status("decline", row["status"]) is None:
            raise _taken_or_invalid(row, "decline", principal.user_id)
        if response not in (None, "declined"):
            raise Conflict("your offer for this session is closed", code="OFFER_CLOSED", current_status=row["status"])
        exclude: list[str] | None = None
        if response is None:  # a repeated decline changes nothing
            offers.decline_offer(tx, session_id, principal.user_id, now)
            store.record_event(tx, session_id, "declined", _actor(principal), now)
            if offers.pending_offer_count(tx, session_id) == 0:
                exclude = offers.reblast_exclusions(tx, session_id)
        tx.commit()
    picked: list[str] = []
    expired = False
    if exclude is not None:  # this was the last open offer: nobody else re-blasts this session
        picked = availability.find_available_mitras(ctx, ctx.settings.pairing_blast_size, exclude)
        with ctx.db.transaction() as tx:
            current = store.get(tx, session_id, lock=True)
            if (
                current is not None
                and current["status"] == "searching"
                and not offers.pending_offer_count(tx, session_id)
            ):
                row = _reblast_or_expire(tx, current, picked, now)
                expired = row["status"] == "expired"
            else:  # cancelled or expired meanwhile: nothing to re-blast
                row, picked = current or row, []
            tx.commit()
    effects.wake_readers(ctx, session_id)
    if expired:
        effects.push(ctx, "customer", [row["customer_id"]], "session_expired", row, end_reason="no_mitra_available")
    elif picked:
        _push_offers(ctx, row, picked)
    return {"session_id": session_id, "response": "declined", "status": row["status"]}


def _reblast_or_expire(tx: Tx, row: Row, picked: list[str], now: datetime) -> Row:
    session_id = str(row["id"])
    if picked:
        offers.insert_offers(tx, session_id, picked, now)
        store.record_event(tx, session_id, "offered", "system", now, {"mitras": len(picked), "reason": "all_declined"})
        restarted = store.restart_search(tx, session_id, now) or row
        store.feed_session(tx, session_id, "reblasted", now)  # the pairing deadline moved
        return restarted
    # Everyone said no and nobody else is free: tell the customer now rather than at the timeout.
    ended = store.finish(tx, session_id, ("searching",), "expired", "no_mitra_available", now)
    store.record_event(tx, session_id, "expired", "system", now, {"reason": "no_mitra_available"})
    if ended is not None:
        store.system_message(tx, session_id, "expired", now, end_reason="no_mitra_available")
    return ended or row


def end_by_mitra(ctx: AppContext, principal: Principal, session_id: str) -> dict[str, Any]:
    """pending_payment/active -> ended by the mitra holding it (others' sessions are 404)."""
    return _end(ctx, principal, session_id, "mitra_ended", "mitra_id", notify="customer")


# ---- payment webhook (control center) --------------------------------------------------------


def confirm_payment(
    ctx: AppContext, principal: Principal, session_id: str, reason: str | None = None
) -> dict[str, Any]:
    """Staff confirm the payment waiting on a session (the manual path; docs/payments.md).

    pending_payment -> active (started now, expires after duration_minutes), or an active
    session's pending extension paid (expires_at moves). Who confirmed and why are kept on the
    payment and in the session's events; a repeat is a no-op.
    """
    now = ctx.now()
    settle.settle_one(ctx, session_id, now)
    with ctx.db.transaction() as tx:
        current = store.get(tx, session_id, lock=True)  # the session row first, then its payments
        if current is None:
            raise _not_found()
        pending = payment_rows.pending_of(tx, session_id, lock=True)
        wanted = "session" if current["status"] == "pending_payment" else "extension"
        if (
            pending is not None
            and pending["kind"] == wanted
            and pending["deadline_at"] > now
            and current["status"] in states.CAPACITY_STATUSES
        ):
            row = payments.settle_paid(tx, pending, _actor(principal), now, reason, "manual")
            if row is not None:
                view = _view(tx, row)
                tx.commit()
                payments.after_paid(ctx, pending["kind"], row)
                return view
            error = _invalid(store.get(tx, session_id), "confirm payment of")
            tx.commit()  # its time could not be delivered any more: the refund due is kept
            raise error
        view = _view(tx, current)
        if current["status"] == "active" and current["paid_at"] is not None:
            return view  # confirmed already, and no extension waits
        if current["status"] == "pending_payment":
            raise Conflict(
                "the payment deadline has passed", code="PAYMENT_DEADLINE_PASSED", current_status="pending_payment"
            )
        raise _invalid(current, "confirm payment of")
