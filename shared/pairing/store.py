"""Rows of `chat_sessions`, `pairing_offers` and `chat_session_events`: the SQL lives here.

Every state change is a conditional UPDATE (`... WHERE status = :expected RETURNING`), so two
requests racing for the same transition cannot both win: Postgres decides, not Python.
Timestamps come from the caller's clock (`ctx.now()`), never from the database's `now()`,
so the sweep and the transitions agree under an injected clock.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from shared.availability.truth import effective_max_sql, under_capacity_sql
from shared.db import Row, Tx

CAPACITY_STATUSES = ("pending_payment", "active")

# The state machine of SPEC §8: action -> (the statuses it leaves, the status it reaches).
# Each UPDATE below enforces its row in SQL; the services check it first for a clear error.
# accept reaches `active` instead when the session was already paid (a rerouted paid session).
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "accept": (("searching",), "pending_payment"),
    "decline": (("searching",), "searching"),
    "cancel": (("searching",), "cancelled"),
    "pay": (("pending_payment",), "active"),
    "extend": (("active",), "active"),
    "end": (CAPACITY_STATUSES, "ended"),
    "reroute": (CAPACITY_STATUSES, "searching"),
    "expire": (("searching", "pending_payment"), "expired"),  # an active session's time up: "end"
}


def next_status(action: str, current: str | None, *, paid: bool = False) -> str | None:
    """The status `action` moves a session in `current` to, or None when the state machine forbids it."""
    leaves, reaches = TRANSITIONS[action]
    if current not in leaves:
        return None
    return "active" if action == "accept" and paid else reaches


SESSION_COLUMNS = (
    "id, customer_id, mitra_id, status, duration_minutes, requested_at, search_started_at, accepted_at,"
    " payment_deadline_at, paid_at, started_at, expires_at, ended_at, end_reason, extension_count,"
    " excluded_mitra_ids, amount_idr, paid_seconds_left"  # the last two: money rules (docs/payments.md)
)
ONE_OPEN_PER_CUSTOMER = "chat_sessions_one_open_per_customer"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def to_json(row: Row, offered_count: int) -> dict[str, Any]:
    """The public shape of a chat session."""
    return {
        "id": str(row["id"]),
        "status": row["status"],
        "customer_id": str(row["customer_id"]),
        "mitra_id": str(row["mitra_id"]) if row["mitra_id"] else None,
        "duration_minutes": row["duration_minutes"],
        "requested_at": _iso(row["requested_at"]),
        "search_started_at": _iso(row["search_started_at"]),
        "accepted_at": _iso(row["accepted_at"]),
        "payment_deadline_at": _iso(row["payment_deadline_at"]),
        "paid_at": _iso(row["paid_at"]),
        "started_at": _iso(row["started_at"]),
        "expires_at": _iso(row["expires_at"]),
        "ended_at": _iso(row["ended_at"]),
        "end_reason": row["end_reason"],
        "extension_count": row["extension_count"],
        "offered_count": offered_count,
        "amount_idr": row["amount_idr"],  # what the booked minutes cost (docs/payments.md)
    }


# ---- reads ---------------------------------------------------------------------------------


def get(tx: Tx, session_id: str, *, lock: bool = False) -> Row | None:
    """One session (FOR UPDATE when `lock`), or None."""
    suffix = " FOR UPDATE" if lock else ""
    return tx.one(
        f"SELECT {SESSION_COLUMNS} FROM chat_sessions WHERE id = CAST(:id AS uuid){suffix}",  # noqa: S608 (constant SQL)
        id=session_id,
    )


def open_session_of(tx: Tx, customer_id: str) -> Row | None:
    """The customer's open session (searching, pending_payment or active), if any."""
    return tx.one(
        f"SELECT {SESSION_COLUMNS} FROM chat_sessions"  # noqa: S608 (constant SQL)
        " WHERE customer_id = CAST(:c AS uuid) AND status IN ('searching', 'pending_payment', 'active')",
        c=customer_id,
    )


def offered_count(tx: Tx, session_id: str) -> int:
    """How many mitras this session has been offered to (every blast)."""
    return int(tx.scalar("SELECT count(*) FROM pairing_offers WHERE session_id = CAST(:id AS uuid)", id=session_id))


def offer_response(tx: Tx, session_id: str, mitra_id: str) -> tuple[bool, str | None]:
    """(offered, response) of this mitra's offer for this session."""
    row = tx.one(
        "SELECT response FROM pairing_offers WHERE session_id = CAST(:s AS uuid) AND mitra_id = CAST(:m AS uuid)",
        s=session_id,
        m=mitra_id,
    )
    return (row is not None, row["response"] if row else None)


def pending_offer_count(tx: Tx, session_id: str) -> int:
    return int(
        tx.scalar(
            "SELECT count(*) FROM pairing_offers WHERE session_id = CAST(:s AS uuid) AND response IS NULL",
            s=session_id,
        )
    )


# The maximum and the decision are the availability rule's own SQL (shared.availability.truth).
_OVERRIDE = "CAST(:override AS int)"
_CAPACITY_SQL = (
    f"SELECT used, {effective_max_sql(_OVERRIDE)} AS max, {under_capacity_sql('used', _OVERRIDE)} AS has_room"  # noqa: S608
    " FROM (SELECT count(*) AS used FROM chat_sessions"
    "       WHERE mitra_id = CAST(:m AS uuid) AND status IN ('pending_payment', 'active')) c"
)


def lock_mitra_capacity(tx: Tx, mitra_id: str) -> Row | None:
    """Lock the mitra row, then count its open sessions: {is_active, used, max, has_room}, or None.

    The row lock (FOR NO KEY UPDATE: it serializes this mitra's accepts but not the
    foreign-key checks of new offers) is taken before counting, so two concurrent accepts of
    different sessions by one mitra see each other's result and cannot both pass the check.
    """
    locked = tx.one(
        "SELECT is_active, max_concurrent_sessions FROM mitras WHERE id = CAST(:m AS uuid) FOR NO KEY UPDATE",
        m=mitra_id,
    )
    if locked is None:
        return None
    counts = tx.one(_CAPACITY_SQL, m=mitra_id, override=locked["max_concurrent_sessions"])
    assert counts is not None
    return {
        "is_active": locked["is_active"],
        "used": int(counts["used"]),
        "max": int(counts["max"]),
        "has_room": bool(counts["has_room"]),
    }


# ---- writes --------------------------------------------------------------------------------


def insert_session(tx: Tx, customer_id: str, duration_minutes: int, now: datetime, amount_idr: int) -> Row:
    """A new searching session (raises the unique violation ONE_OPEN_PER_CUSTOMER if one is open)."""
    row = tx.one(
        "INSERT INTO chat_sessions (customer_id, status, duration_minutes, requested_at, search_started_at, amount_idr)"  # noqa: S608
        f" VALUES (CAST(:c AS uuid), 'searching', :d, :now, :now, :a) RETURNING {SESSION_COLUMNS}",
        c=customer_id,
        d=duration_minutes,
        now=now,
        a=amount_idr,
    )
    assert row is not None
    return row


def insert_offers(tx: Tx, session_id: str, mitra_ids: list[str], now: datetime) -> int:
    """Offer the session to each mitra; an offer that was lost (not declined) is reopened."""
    return tx.execute(
        "INSERT INTO pairing_offers (session_id, mitra_id, offered_at)"
        " SELECT CAST(:s AS uuid), m, :now FROM unnest(CAST(:ids AS uuid[])) AS m"
        " ON CONFLICT (session_id, mitra_id) DO UPDATE"
        "   SET offered_at = EXCLUDED.offered_at, response = NULL, responded_at = NULL"
        "   WHERE pairing_offers.response = 'lost'",
        s=session_id,
        ids=mitra_ids,
        now=now,
    )


def accept(tx: Tx, session_id: str, mitra_id: str, now: datetime, payment_deadline: datetime) -> Row | None:
    """searching -> pending_payment (or straight to active when already paid: a rerouted paid session).

    The conditional UPDATE is the race arbiter: of many concurrent accepts exactly one
    finds `status = 'searching'`; the others wait for its row lock, then match nothing.
    """
    return tx.one(
        "UPDATE chat_sessions SET mitra_id = CAST(:m AS uuid), accepted_at = :now,"  # noqa: S608 (constant SQL)
        " status = CASE WHEN paid_at IS NULL THEN 'pending_payment' ELSE 'active' END,"
        " payment_deadline_at = CASE WHEN paid_at IS NULL THEN CAST(:deadline AS timestamptz) END,"
        " started_at = CASE WHEN paid_at IS NOT NULL THEN CAST(:now AS timestamptz) END,"
        # Money rule (docs/payments.md): a rerouted paid session gives the next mitra the paid
        # time it had left (paid_seconds_left), not a fresh full duration.
        " expires_at = CASE WHEN paid_at IS NOT NULL THEN CAST(:now AS timestamptz)"
        "   + coalesce(make_interval(secs => paid_seconds_left), make_interval(mins => duration_minutes)) END,"
        " paid_seconds_left = NULL"
        f" WHERE id = CAST(:id AS uuid) AND status = 'searching' RETURNING {SESSION_COLUMNS}",
        id=session_id,
        m=mitra_id,
        now=now,
        deadline=payment_deadline,
    )


def confirm_payment(tx: Tx, session_id: str, now: datetime) -> Row | None:
    """pending_payment (deadline not passed) -> active for duration_minutes from now."""
    return tx.one(
        "UPDATE chat_sessions SET status = 'active', paid_at = :now, started_at = :now,"  # noqa: S608 (constant SQL)
        " expires_at = CAST(:now AS timestamptz) + make_interval(mins => duration_minutes)"
        " WHERE id = CAST(:id AS uuid) AND status = 'pending_payment' AND payment_deadline_at > :now"
        f" RETURNING {SESSION_COLUMNS}",
        id=session_id,
        now=now,
    )


def extend(tx: Tx, session_id: str, minutes: int, now: datetime, max_total_minutes: int) -> Row | None:
    """active (and not yet past expires_at) -> expires_at and duration_minutes moved by `minutes`."""
    return tx.one(
        "UPDATE chat_sessions SET expires_at = expires_at + make_interval(mins => CAST(:n AS int)),"  # noqa: S608 (constant SQL)
        " duration_minutes = duration_minutes + CAST(:n AS int), extension_count = extension_count + 1"
        " WHERE id = CAST(:id AS uuid) AND status = 'active' AND expires_at > :now"
        f" AND duration_minutes + CAST(:n AS int) <= :max RETURNING {SESSION_COLUMNS}",
        id=session_id,
        n=minutes,
        now=now,
        max=max_total_minutes,
    )


def finish(
    tx: Tx, session_id: str, expected: tuple[str, ...], status: str, end_reason: str, now: datetime
) -> Row | None:
    """One of `expected` -> a final status (ended, cancelled, expired) with ended_at and end_reason."""
    return tx.one(
        "UPDATE chat_sessions SET status = :status, ended_at = :now, end_reason = :reason"  # noqa: S608 (constant SQL)
        " WHERE id = CAST(:id AS uuid) AND status = ANY(CAST(:expected AS text[]))"
        f" RETURNING {SESSION_COLUMNS}",
        id=session_id,
        expected=list(expected),
        status=status,
        reason=end_reason,
        now=now,
    )


def reroute(tx: Tx, session_id: str, from_status: str, previous_mitra: str, now: datetime) -> Row | None:
    """pending_payment/active held by `previous_mitra` -> searching again, that mitra excluded.

    paid_at is kept: a paid session that is rerouted goes straight to active on the next
    accept. The pairing timeout restarts (search_started_at).
    """
    return tx.one(
        "UPDATE chat_sessions SET status = 'searching', mitra_id = NULL, search_started_at = :now,"  # noqa: S608 (constant SQL)
        " accepted_at = NULL, payment_deadline_at = NULL, started_at = NULL, expires_at = NULL,"
        # Money rule (docs/payments.md): an active paid session keeps the paid time it has left.
        " paid_seconds_left = CASE WHEN status = 'active' THEN"
        "   greatest(0, floor(extract(epoch FROM expires_at - CAST(:now AS timestamptz)))) END,"
        " excluded_mitra_ids = array_append(excluded_mitra_ids, CAST(:m AS uuid))"
        " WHERE id = CAST(:id AS uuid) AND status = :from_status AND mitra_id = CAST(:m AS uuid)"
        f" RETURNING {SESSION_COLUMNS}",
        id=session_id,
        from_status=from_status,
        m=previous_mitra,
        now=now,
    )


def restart_search(tx: Tx, session_id: str, now: datetime) -> Row | None:
    """A searching session re-blasted: the pairing timeout counts from now."""
    return tx.one(
        f"UPDATE chat_sessions SET search_started_at = :now"  # noqa: S608 (constant SQL)
        f" WHERE id = CAST(:id AS uuid) AND status = 'searching' RETURNING {SESSION_COLUMNS}",
        id=session_id,
        now=now,
    )


def close_offers(tx: Tx, session_id: str, now: datetime, winner: str | None = None) -> list[str]:
    """Mark the winner's offer accepted and every unanswered one lost; the mitras who lost."""
    rows = tx.rows(
        "UPDATE pairing_offers SET responded_at = :now,"
        " response = CASE WHEN mitra_id = CAST(:w AS uuid) THEN 'accepted' ELSE 'lost' END"
        " WHERE session_id = CAST(:s AS uuid) AND (response IS NULL OR mitra_id = CAST(:w AS uuid))"
        " RETURNING mitra_id, response",
        s=session_id,
        w=winner,
        now=now,
    )
    return [str(r["mitra_id"]) for r in rows if r["response"] == "lost"]


def decline_offer(tx: Tx, session_id: str, mitra_id: str, now: datetime) -> bool:
    """Record a decline of an unanswered offer; False when it was already answered."""
    return (
        tx.execute(
            "UPDATE pairing_offers SET response = 'declined', responded_at = :now"
            " WHERE session_id = CAST(:s AS uuid) AND mitra_id = CAST(:m AS uuid) AND response IS NULL",
            s=session_id,
            m=mitra_id,
            now=now,
        )
        == 1
    )


def record_event(
    tx: Tx, session_id: str, event_type: str, actor: str, now: datetime, detail: dict[str, Any] | None = None
) -> None:
    """Append one audit row to chat_session_events."""
    tx.execute(
        "INSERT INTO chat_session_events (session_id, type, actor, at, detail)"
        " VALUES (CAST(:s AS uuid), :t, :a, :at, CAST(:d AS jsonb))",
        s=session_id,
        t=event_type,
        a=actor,
        at=now,
        d=json.dumps(detail or {}),
    )


def reblast_exclusions(tx: Tx, session_id: str) -> list[str]:
    """Mitras a re-blast must skip: excluded ones, and every offered mitra except those who only lost.

    A mitra who lost a race for this session (another mitra won, then the session was
    rerouted) never said no, so it may be offered again; one who declined, is still
    pending, or held the session before is skipped.
    """
    rows = tx.rows(
        "SELECT unnest(excluded_mitra_ids) AS m FROM chat_sessions WHERE id = CAST(:s AS uuid)"
        " UNION SELECT mitra_id FROM pairing_offers WHERE session_id = CAST(:s AS uuid)"
        "   AND (response IS NULL OR response <> 'lost')",
        s=session_id,
    )
    return [str(r["m"]) for r in rows]


# ---- the session-expiry sweep ---------------------------------------------------------------

# Per kind: the status it leaves, the deadline column, the status and end_reason it sets.
EXPIRY_KINDS: dict[str, tuple[str, str, str, str]] = {
    "expired_searching": ("searching", "search_started_at", "expired", "pairing_timeout"),
    "expired_unpaid": ("pending_payment", "payment_deadline_at", "expired", "payment_timeout"),
    "ended_active": ("active", "expires_at", "ended", "expired"),
}


def expire_batch(
    tx: Tx,
    kind: str,
    due_before: datetime,
    now: datetime,
    actor: str,
    batch: int,
    *,
    session_ids: list[str] | None = None,
) -> list[Row]:
    """Move up to `batch` due sessions of `kind` to their final status, with events; the moved rows.

    FOR UPDATE SKIP LOCKED lets overlapping sweeps split the work instead of queueing, and a
    row a user transition holds is simply left for the next pass; the status re-check in the
    UPDATE keeps every session moving once. Each row carries `lost`: the mitras whose
    unanswered offers were closed.

    With `session_ids` the same update is limited to those sessions and waits for their row
    locks instead of skipping them (a read or a transition settling the sessions it is about
    to show or change must see the outcome of a concurrent transition, not skip it).
    """
    from_status, column, to_status, reason = EXPIRY_KINDS[kind]
    lock = "FOR UPDATE SKIP LOCKED" if session_ids is None else "FOR UPDATE"
    return tx.rows(
        f"WITH due AS (SELECT id FROM chat_sessions WHERE status = :from_status AND {column} <= :due_before"  # noqa: S608
        "             AND (CAST(:only AS uuid[]) IS NULL OR id = ANY(CAST(:only AS uuid[])))"
        f"             ORDER BY {column}, id LIMIT :batch {lock}),"
        " done AS (UPDATE chat_sessions s SET status = :to_status, ended_at = :now, end_reason = :reason"
        "          FROM due WHERE s.id = due.id AND s.status = :from_status"
        "          RETURNING s.id, s.customer_id, s.mitra_id),"
        " ev AS (INSERT INTO chat_session_events (session_id, type, actor, at, detail)"
        "        SELECT id, :to_status, :actor, :now, jsonb_build_object('reason', CAST(:reason AS text)) FROM done),"
        " lost AS (UPDATE pairing_offers p SET response = 'lost', responded_at = :now"
        "          FROM done WHERE p.session_id = done.id AND p.response IS NULL RETURNING p.session_id, p.mitra_id)"
        " SELECT d.id, d.customer_id, d.mitra_id,"
        "        ARRAY(SELECT l.mitra_id FROM lost l WHERE l.session_id = d.id) AS lost"
        " FROM done d",
        from_status=from_status,
        to_status=to_status,
        reason=reason,
        due_before=due_before,
        now=now,
        actor=actor,
        batch=batch,
        only=session_ids,
    )


def due_kind(row: Row, now: datetime, pairing_timeout: timedelta) -> str | None:
    """The expiry kind whose deadline this session (a row of SESSION_COLUMNS) has reached, or None.

    The same conditions as `expire_batch`: a deadline reached at exactly `now` is due.
    """
    status = row["status"]
    if status == "searching" and row["search_started_at"] <= now - pairing_timeout:
        return "expired_searching"
    if status == "pending_payment" and row["payment_deadline_at"] is not None and row["payment_deadline_at"] <= now:
        return "expired_unpaid"
    if status == "active" and row["expires_at"] is not None and row["expires_at"] <= now:
        return "ended_active"
    return None
